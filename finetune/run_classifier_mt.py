"""Multi-task classification (one encoder, a head per dataset): see `python finetune/run_classifier_mt.py --help`
and docs/finetune.md."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from uer_like.finetune.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main("multi_task_classification"))
