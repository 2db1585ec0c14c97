"""The progress line both training loops log (pretraining: trainer.py; fine-tuning: finetune/core.py):

    step 200/1000 | loss 0.4312 | lr 1.8e-05 | grad norm 1.204 | 15,230 tokens/s | 212.5 examples/s

step, the losses (pretraining: each target's loss and accuracy), learning rate, mean gradient norm, and
the throughput since the previous line, summed over the ranks.
"""


def format_report(step, total, losses, lr, grad_norm, tokens_per_s, extra=()):
    """losses: formatted pieces ("loss 0.4312", "mlm loss 2.1 acc 0.41"), or a dict name -> value;
    extra: more pieces after the throughput (e.g. "MFU 41.0%")."""
    if isinstance(losses, dict):
        losses = [f"{name} {value:.4f}" for name, value in losses.items()]
    extra = [extra] if isinstance(extra, str) else list(extra or ())
    parts = [f"step {step}/{total}", *losses, f"lr {lr:.3g}", f"grad norm {grad_norm:.3f}",
             f"{tokens_per_s:,.0f} tokens/s", *extra]
    return " | ".join(parts)
