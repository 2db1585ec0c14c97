import torch.nn as nn

from ..registry import EMBEDDINGS


@EMBEDDINGS.register("task")
class TaskEmbedding(nn.Module):
    """ERNIE 2.0/3.0 task-type embedding (`embedding: [..., "task"]`): a table of `task_type_vocab_size` rows,
    of which row `task_id` is added to every token (Hugging Face ErnieModel's task_type_embeddings with
    `task_type_ids` filled with one task, as ERNIE is fine-tuned)."""

    def __init__(self, config, vocab_size):
        super().__init__()
        self.task_id = config.task_id
        self.embedding = nn.Embedding(config.task_type_vocab_size, config.emb_size)

    def forward(self, src, seg, positions=None):
        return self.embedding.weight[self.task_id].view(1, 1, -1)
