"""Repetition controls (``fairseq_relpos.generation.repetition``): n-gram bans against a brute-force
count, the window, exempt tokens, the repetition penalty against a hand computation, forced rows
never emptied; decoding through fairseq's search holds no repeated n-gram. Stock's CPU
``NGramRepeatBlock`` is shown to ban nothing (the defect the controls replace)."""
import math
import random

import pytest
import torch
from fairseq.ngram_repeat_block import NGramRepeatBlock
from fairseq.sequence_generator import SequenceGenerator

from fairseq_relpos.generation import DocumentSequenceGenerator
from fairseq_relpos.generation.repetition import RepetitionControls
from model_builders import build

PAD, EOS, V = 1, 2, 12
SYMBOLS = [4, 5, 6, 7, 8]  # few, so that random rows repeat n-grams


def expected_bans(emitted, n, window=0, exempt=()):
    """Brute force: every token that would complete an n-gram found among ``emitted``."""
    recent = emitted[-window:] if window else emitted
    suffix = recent[len(recent) - n + 1:] if n > 1 else []
    return {recent[j + n - 1] for j in range(len(recent) - n + 1)
            if recent[j:j + n - 1] == suffix} - set(exempt)


def random_buffer(rows, step, max_len, seed):
    """fairseq's token buffer at ``step``: start symbol, ``step`` emitted tokens, pad after."""
    g = random.Random(seed)
    tokens = torch.full((rows, max_len + 2), PAD, dtype=torch.long)
    tokens[:, 0] = EOS
    for r in range(rows):
        tokens[r, 1:step + 1] = torch.tensor([g.choice(SYMBOLS) for _ in range(step)], dtype=torch.long)
    return tokens


def random_lprobs(rows, seed):
    lprobs = torch.log_softmax(torch.randn(rows, V, generator=torch.Generator().manual_seed(seed)), -1)
    lprobs[:, PAD] = -math.inf  # as fairseq leaves them
    return lprobs


CASES = [(n, window, bsz, beam, step, seed)
         for seed, (n, window) in enumerate([(1, 0), (2, 0), (3, 0), (4, 0), (2, 5), (3, 3), (3, 8), (4, 10)])
         for bsz, beam in [(1, 1), (3, 1), (2, 4)]
         for step in (0, 1, 2, 3, 7, 25)]


@pytest.mark.parametrize("n,window,bsz,beam,step,seed", CASES)
def test_bans_are_the_brute_force_ones_and_mass_is_kept(n, window, bsz, beam, step, seed):
    rows, max_len = bsz * beam, 30
    tokens = random_buffer(rows, step, max_len, seed)
    lprobs = random_lprobs(rows, seed)
    out = RepetitionControls(ngram_size=n, ngram_window=window)(tokens, lprobs.clone(), bsz, beam, step)
    for r in range(rows):
        banned = expected_bans(tokens[r, 1:step + 1].tolist(), n, window)
        assert {t for t in range(V) if out[r, t] == -math.inf} == banned | {PAD}
        # the row's probability mass is kept, spread over what is left
        assert torch.logsumexp(out[r], 0).item() == pytest.approx(torch.logsumexp(lprobs[r], 0).item(), abs=1e-6)
        kept = [t for t in range(V) if t not in banned | {PAD}]
        ratios = out[r, kept] - lprobs[r, kept]
        assert torch.allclose(ratios, ratios[0].expand_as(ratios), atol=1e-6)


def test_brute_force_finds_bans_that_stock_cpu_path_misses():
    """fairseq's NGramRepeatBlock on the CPU compares the buffer's padded end with earlier
    n-grams: where the brute force (and these controls) ban tokens, it bans none."""
    found = 0
    for n, step, seed in [(2, 10, 0), (3, 20, 1), (4, 28, 2)]:
        tokens = random_buffer(4, step, 30, seed)
        bans = [expected_bans(tokens[r, 1:step + 1].tolist(), n) for r in range(4)]
        found += sum(len(b) for b in bans)
        stock = NGramRepeatBlock(n, use_extension=False)(tokens, random_lprobs(4, seed), 4, 1, step)
        assert torch.isinf(stock).sum() == 4  # <pad> alone, as given
        ours = RepetitionControls(ngram_size=n)(tokens, random_lprobs(4, seed), 4, 1, step)
        assert torch.isinf(ours).sum() == 4 + sum(len(b) for b in bans)
    assert found >= 10


def test_window_lets_an_old_ngram_repeat():
    """``4 5`` emitted 8 tokens ago and 4 just emitted: 5 banned over the whole output, allowed
    with a window of 4."""
    emitted = [4, 5, 6, 7, 8, 6, 7, 8, 4]
    tokens = torch.tensor([[EOS] + emitted + [PAD, PAD]])
    lprobs = random_lprobs(1, 0)
    whole = RepetitionControls(ngram_size=2)(tokens, lprobs.clone(), 1, 1, len(emitted))
    window = RepetitionControls(ngram_size=2, ngram_window=4)(tokens, lprobs.clone(), 1, 1, len(emitted))
    assert whole[0, 5] == -math.inf
    assert torch.equal(window, lprobs)  # the last 4 tokens, 6 7 8 4, hold no bigram starting with 4
    near = RepetitionControls(ngram_size=2, ngram_window=len(emitted))(tokens, lprobs.clone(), 1, 1, len(emitted))
    assert near[0, 5] == -math.inf


def test_exempt_tokens_are_never_banned_nor_penalised():
    sep = 9
    lprobs = random_lprobs(1, 3)

    def controls(emitted, **kwargs):
        tokens = torch.tensor([[EOS] + emitted + [PAD]])
        return RepetitionControls(**kwargs)(tokens, lprobs.clone(), 1, 1, len(emitted))

    # "sep 5" is held and sep was just emitted: 5 is banned, the separator takes part in n-grams
    assert controls([4, sep, 5, sep, 6, sep], ngram_size=2, exempt=[sep])[0, 5] == -math.inf
    # "4 sep" is held and 4 was just emitted: sep is banned unless exempt, and nothing else is
    assert controls([4, sep, 5, sep, 6, 4], ngram_size=2)[0, sep] == -math.inf
    assert torch.equal(controls([4, sep, 5, sep, 6, 4], ngram_size=2, exempt=[sep]), lprobs)
    penalised = controls([4, sep, 5, sep, 6, 4], penalty=3.0, exempt=[sep])
    shift = (penalised[0, 0] - lprobs[0, 0]).item()  # the renormalisation, for every unpenalised token
    assert (penalised[0, sep] - lprobs[0, sep]).item() == pytest.approx(shift)
    assert (penalised[0, 5] - lprobs[0, 5]).item() == pytest.approx(2 * lprobs[0, 5].item() + shift)


def test_penalty_by_hand():
    """Probabilities .1 .2 .3 .4 over tokens 4..7 (the rest 0), tokens 7 and 5 emitted (7 twice),
    F = 2: log p * F is p squared, 7 -> .16, 5 -> .04, once each however often emitted; the row
    renormalised: .1 .04 .3 .16 over .6."""
    probs = torch.tensor([[0, 0, 0, 0, .1, .2, .3, .4]])
    tokens = torch.tensor([[EOS, 7, 5, 7, PAD]])
    out = RepetitionControls(penalty=2.0)(tokens, probs.log(), 1, 1, 3)
    assert torch.allclose(out.exp(), torch.tensor([[0, 0, 0, 0, .1 / .6, .04 / .6, .3 / .6, .16 / .6]]))
    bonus = RepetitionControls(penalty=0.5)(tokens, probs.log(), 1, 1, 3)  # F < 1 favours repeats
    expected = torch.tensor([0, 0, 0, 0, .1, .2 ** .5, .3, .4 ** .5])
    assert torch.allclose(bonus.exp(), (expected / expected.sum()).unsqueeze(0))


def test_forced_row_is_never_emptied():
    """A row where only one token is allowed (a forced prefix token, </s> at the cap) keeps it
    and its score even when the n-gram rule or the penalty would strike it."""
    tokens = torch.tensor([[EOS, 4, 5, 4, PAD], [EOS, 4, 5, 4, PAD]])
    lprobs = torch.full((2, V), -math.inf)
    lprobs[0, 5] = -1.5  # forced, and 4 5 would repeat
    lprobs[1, 6] = -0.7  # forced, nothing to ban
    out = RepetitionControls(ngram_size=2, penalty=2.0)(tokens, lprobs.clone(), 2, 1, 3)
    assert torch.equal(out, lprobs)


@pytest.mark.parametrize("kwargs,message", [
    (dict(ngram_size=-1), "--no-repeat-ngram-size must be an integer >= 0"),
    (dict(ngram_size=2.5), "--no-repeat-ngram-size must be an integer >= 0"),
    (dict(ngram_window=4), "--no-repeat-ngram-window needs --no-repeat-ngram-size"),
    (dict(ngram_size=4, ngram_window=3), "holds no complete 4-gram"),
    (dict(ngram_size=2, ngram_window=-1), "--no-repeat-ngram-window must be an integer >= 0"),
    (dict(penalty=0), "--repetition-penalty must be a finite number > 0"),
    (dict(penalty=-2.0), "--repetition-penalty must be a finite number > 0"),
    (dict(penalty=math.inf), "--repetition-penalty must be a finite number > 0"),
])
def test_bad_values_are_refused_naming_the_option(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RepetitionControls(**kwargs)


# ---- through fairseq's search ---------------------------------------------------------------

def repeats(emitted, n, window=0):
    """Positions t where the n-gram ending at t was already held, starting within the ``window``
    tokens before t (all of them with 0): what the controls must have prevented."""
    found = []
    for t in range(n - 1, len(emitted)):
        before = emitted[:t][-window:] if window else emitted[:t]
        held = [before[j:j + n] for j in range(len(before) - n + 1)]
        if emitted[t - n + 1:t + 1] in held:
            found.append(t)
    return found


@pytest.fixture(scope="module")
def tiny(dicts):
    task, model, _ = build(dicts, "transformer_rope")
    torch.manual_seed(0)
    src = torch.randint(task.source_dictionary.nspecial, len(task.source_dictionary), (3, 9))
    src[:, -1] = task.source_dictionary.eos()
    return task, model, {"net_input": {"src_tokens": src, "src_lengths": torch.full((3,), 9)}}


def decode(tiny, cls, beam, controls=None, length=45, stock_ngram=0):
    task, model, sample = tiny
    gen = cls([model], task.target_dictionary, beam_size=beam, max_len_a=0, max_len_b=length, min_len=length,
              no_repeat_ngram_size=stock_ngram)
    if controls is not None:
        gen.repeat_ngram_blocker = controls
    with torch.no_grad():
        hypos = gen.generate([model], sample)
    return [[h["tokens"][:-1].tolist() for h in sentence] for sentence in hypos]  # without the final </s>


@pytest.mark.parametrize("cls", [SequenceGenerator, DocumentSequenceGenerator])
@pytest.mark.parametrize("beam", [1, 4])
@pytest.mark.parametrize("n,window", [(2, 0), (3, 0), (2, 6)])
def test_decoded_outputs_hold_no_repeated_ngram(tiny, cls, beam, n, window):
    plain = decode(tiny, cls, beam)
    assert any(repeats(h, n, window) for sentence in plain for h in sentence)  # the random model repeats
    stock = decode(tiny, cls, beam, stock_ngram=n)
    if not window:  # stock's blocker on the CPU changes nothing
        assert stock == plain
    blocked = decode(tiny, cls, beam, RepetitionControls(ngram_size=n, ngram_window=window))
    for sentence in blocked:
        for h in sentence:
            assert len(h) == 45 and repeats(h, n, window) == []
