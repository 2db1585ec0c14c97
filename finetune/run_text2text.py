"""Fine-tune or run inference: see `python finetune/run_text2text.py --help` and docs/finetune.md."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from uer_like.finetune.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main("text2text"))
