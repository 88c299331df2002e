"""The repetition controls' option values, checked without torch: shared by the fairseq hook
(``generation.repetition``), the task options and the CTranslate2 export."""
import math
import numbers


def check(ngram_size=0, ngram_window=0, penalty=1.0):
    """One clear error naming the option, for values the controls cannot take."""
    def integer(value):
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)

    if not integer(ngram_size) or ngram_size < 0:
        raise ValueError(f"--no-repeat-ngram-size must be an integer >= 0, got {ngram_size!r}")
    if not integer(ngram_window) or ngram_window < 0:
        raise ValueError(f"--no-repeat-ngram-window must be an integer >= 0 (0: the whole output), "
                         f"got {ngram_window!r}")
    if ngram_window and not ngram_size:
        raise ValueError("--no-repeat-ngram-window needs --no-repeat-ngram-size N (the window limits "
                         "which N-grams are banned)")
    if ngram_window and ngram_window < ngram_size:
        raise ValueError(f"--no-repeat-ngram-window {ngram_window} holds no complete "
                         f"{ngram_size}-gram: give 0 (the whole output) or at least "
                         f"--no-repeat-ngram-size ({ngram_size})")
    if (not isinstance(penalty, numbers.Real) or isinstance(penalty, bool) or not math.isfinite(penalty)
            or penalty <= 0):
        raise ValueError(f"--repetition-penalty must be a finite number > 0 (1: off), got {penalty!r}")
