"""Whether a decoded document ran on, for ``--doc-fallback``.

Three signs, each a reason logged by name: the hypothesis reached its length cap; it repeats
word 4-grams far more than its own source does (references repeat about 1% in the Bible study,
looping outputs 60-66%); its length-normalised log-probability is far below the other documents
of its batch (a loop the model is unsure of). The thresholds are set in the module's constants
and measured in benchmarks/README.md ("Fallback thresholds").
"""
import statistics
from collections import Counter

NGRAM = 4
REPEAT_FACTOR, REPEAT_MARGIN = 2.0, 0.10  # run on when rate > 2 x source's rate + 0.10
LOW_SCORE_MARGIN = 1.0  # nats per token below the batch's median (batches of 3 or more documents)


def repeated_share(tokens, n=NGRAM):
    """Share of the n-grams of ``tokens`` (a list of ids) that repeat an earlier one."""
    grams = [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]
    if not grams:
        return 0.0
    return 1.0 - len(Counter(grams)) / len(grams)


def reasons(hypothesis, source, cap, score, batch_scores):
    """Why this document ran on (a list of phrases, empty when it did not). ``hypothesis`` and
    ``source``: token ids without ``</s>``; ``cap``: its tokens' limit; ``score``: its
    length-normalised log-probability; ``batch_scores``: those of its batch."""
    found = []
    if len(hypothesis) >= cap:
        found.append(f"reached its length cap ({cap} tokens)")
    own, source_share = repeated_share(hypothesis), repeated_share(source)
    if own > REPEAT_FACTOR * source_share + REPEAT_MARGIN:
        found.append(f"repeats {own:.0%} of its {NGRAM}-grams (source {source_share:.0%})")
    if len(batch_scores) >= 3:
        median = statistics.median(batch_scores)
        if score < median - LOW_SCORE_MARGIN:
            found.append(f"scores {score:.2f} per token, the batch's median {median:.2f}")
    return found
