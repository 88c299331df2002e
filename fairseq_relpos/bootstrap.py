"""Paired bootstrap 95% confidence interval of a ChrF++ difference between two systems.

sacrebleu's paired bootstrap (``sacrebleu.significance``) gives a p-value and an interval around
each system's own score, not an interval of the difference, so this draws the resamples the way
it does (numpy's ``default_rng(seed).choice`` with replacement, 1,000 resamples, seed 12345 as
sacrebleu's default ``SACREBLEU_SEED``), sums sacrebleu's own sufficient statistics of each
system over the same draw, scores both with sacrebleu and takes the difference; the interval is
the 2.5th and 97.5th percentiles of the differences, indexed as sacrebleu's ``estimate_ci``
does. With ``groups`` the unit drawn is a group of segments (a document's sentences together:
they share the document's fate, as when a loop spoils every sentence after it).
"""
import numpy as np
from sacrebleu.metrics import CHRF

RESAMPLES = 1000
SEED = 12345


def paired_bootstrap(hyps_a, hyps_b, refs, groups=None, resamples=RESAMPLES, seed=SEED):
    """ChrF++ of A minus B on the same references, with its paired bootstrap 95% interval:
    ``{"difference", "ci95": [low, high], "resamples", "seed", "unit"}``. ``groups``: for each
    segment, the id of the unit it is drawn with (None: each segment alone)."""
    differences, observed = bootstrap_differences(hyps_a, hyps_b, refs, groups, resamples, seed)
    ordered = np.sort(differences)
    low = resamples // 40
    return {"difference": observed, "ci95": [float(ordered[low]), float(ordered[resamples - low - 1])],
            "resamples": resamples, "seed": seed, "unit": "segment" if groups is None else "group"}


def bootstrap_differences(hyps_a, hyps_b, refs, groups=None, resamples=RESAMPLES, seed=SEED):
    """Each resample's ChrF++ of A minus B (in the order of :func:`draws`), and the difference
    on all segments."""
    if not len(hyps_a) == len(hyps_b) == len(refs):
        raise ValueError(f"a paired comparison needs one hypothesis of each system per reference: "
                         f"{len(hyps_a)}, {len(hyps_b)} and {len(refs)}")
    if not refs:
        raise ValueError("nothing to compare: no segments")
    if resamples < 40:
        raise ValueError(f"{resamples} resamples: a 95% interval needs at least 40")
    chrf = CHRF(word_order=2)
    units = _unit_of(groups, len(refs))
    stats = []
    for hyps in (hyps_a, hyps_b):
        per_segment = np.array(chrf._extract_corpus_statistics(list(hyps), [list(refs)]), dtype=np.int64)
        per_unit = np.zeros((units.max() + 1, per_segment.shape[1]), dtype=np.int64)
        np.add.at(per_unit, units, per_segment)
        stats.append(per_unit)
    counts = np.zeros((resamples, len(stats[0])), dtype=np.int64)  # how often each unit is drawn
    np.add.at(counts, (np.arange(resamples)[:, None], draws(len(stats[0]), resamples, seed)), 1)

    def scores(per_unit, weights):
        return np.array([chrf._compute_score_from_stats(row.tolist()).score for row in weights @ per_unit])

    observed = scores(stats[0], np.ones((1, len(stats[0])), dtype=np.int64)) - scores(
        stats[1], np.ones((1, len(stats[1])), dtype=np.int64))
    return scores(stats[0], counts) - scores(stats[1], counts), float(observed[0])


def draws(units, resamples=RESAMPLES, seed=SEED):
    """The units drawn by each resample, a (resamples, units) array, as sacrebleu draws them."""
    return np.random.default_rng(seed).choice(units, size=(resamples, units), replace=True)


def _unit_of(groups, n):
    """Each segment's unit number, 0.. in order of first appearance."""
    if groups is None:
        return np.arange(n)
    if len(groups) != n:
        raise ValueError(f"{len(groups)} group ids for {n} segments")
    numbers = {}
    return np.array([numbers.setdefault(g, len(numbers)) for g in groups])
