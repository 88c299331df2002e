"""What differs between the installed fairseq and main, for tests that must say so."""
import pytest
from fairseq.modules.transformer_layer import TransformerEncoderLayerBase
from torch import nn

from fairseq_relpos.modules.unfused_layer import is_fused_copy  # noqa: F401  (tests import it from here)

# fairseq 0.12.2 (not main) gives stock encoder layers a BetterTransformer fast path
STOCK_FAST_PATH = TransformerEncoderLayerBase._load_from_state_dict is not nn.Module._load_from_state_dict

stock_fast_path_bug = pytest.mark.skipif(
    STOCK_FAST_PATH,
    reason="stock fairseq 0.12.2 bug outside the plugin: its encoder fast path fails on padded batches "
           "of stock models ('Mask Type should be defined', fairseq issues #4858 and #4899); the "
           "plugin's own models never take it (tests/test_positions_always_used.py)")
