"""The end symbol at the true end of every reference: its log-probability (base 2) and rank
among all target symbols after the model has read the whole reference (teacher-forced), one
document at a time. Run as ``python -m benchmarks.experiment.end_rank CHECKPOINT DATA SUBSET
MAX_POSITIONS`` from the checkout's root (its plugin); prints one JSON list, a ``{"logprob",
"rank"}`` per document in id order."""
import json
import math
import sys


def end_ranks(checkpoint, data, subset, max_positions):
    import torch
    from fairseq import checkpoint_utils

    import fairseq_relpos.plugin  # noqa: F401  (its architectures, tasks and safe checkpoint loading)
    overrides = {"data": data, "max_source_positions": max_positions, "max_target_positions": max_positions}
    models, _, task = checkpoint_utils.load_model_ensemble_and_task([checkpoint], arg_overrides=overrides)
    model = models[0].eval()
    task.load_dataset(subset)
    dataset = task.dataset(subset)
    eos = task.target_dictionary.eos()
    out = []
    with torch.no_grad():
        for i in range(len(dataset)):
            batch = dataset.collater([dataset[i]])
            logits = model(**batch["net_input"])[0][0, -1]  # the step that should emit the end
            logprobs = torch.log_softmax(logits.float(), dim=-1)
            out.append({"logprob": float(logprobs[eos]) / math.log(2),
                        "rank": int((logprobs > logprobs[eos]).sum()) + 1})
    return out


if __name__ == "__main__":
    ckpt, data_dir, name, positions = sys.argv[1:]
    print(json.dumps(end_ranks(ckpt, data_dir, name, int(positions))))
