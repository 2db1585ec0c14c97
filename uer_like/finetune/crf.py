"""Linear-chain CRF in torch: negative log-likelihood by the forward algorithm, Viterbi decoding.

Masks are prefixes (1 for the real positions of a sentence, then 0), the first position always real.
"""
import torch
import torch.nn as nn


class CRF(nn.Module):
    def __init__(self, num_tags):
        super().__init__()
        self.num_tags = num_tags
        self.start_transitions = nn.Parameter(torch.empty(num_tags).uniform_(-0.1, 0.1))
        self.end_transitions = nn.Parameter(torch.empty(num_tags).uniform_(-0.1, 0.1))
        self.transitions = nn.Parameter(torch.empty(num_tags, num_tags).uniform_(-0.1, 0.1))  # [from, to]

    def forward(self, emissions, tags, mask, reduction="mean"):
        """emissions [B, T, L], tags [B, T] (anything on masked positions), mask [B, T] -> NLL."""
        emissions = emissions.float()
        mask = mask.bool()
        tags = tags.masked_fill(~mask, 0)
        nll = self._log_partition(emissions, mask) - self._score(emissions, tags, mask)
        if reduction == "none":
            return nll
        if reduction == "sum":
            return nll.sum()
        return nll.mean()

    def _score(self, emissions, tags, mask):
        b, t, _ = emissions.shape
        m = mask.float()
        emit = emissions.gather(2, tags.unsqueeze(-1)).squeeze(-1)  # [B, T]
        score = self.start_transitions[tags[:, 0]] + emit[:, 0]
        if t > 1:
            trans = self.transitions[tags[:, :-1], tags[:, 1:]]  # [B, T-1]
            score = score + ((trans + emit[:, 1:]) * m[:, 1:]).sum(1)
        last = mask.long().sum(1) - 1
        last_tags = tags.gather(1, last.unsqueeze(1)).squeeze(1)
        return score + self.end_transitions[last_tags]

    def _log_partition(self, emissions, mask):
        alpha = self.start_transitions + emissions[:, 0]  # [B, L]
        for i in range(1, emissions.size(1)):
            nxt = torch.logsumexp(alpha.unsqueeze(2) + self.transitions.unsqueeze(0), dim=1) + emissions[:, i]
            alpha = torch.where(mask[:, i].unsqueeze(1), nxt, alpha)
        return torch.logsumexp(alpha + self.end_transitions, dim=1)

    @torch.no_grad()
    def decode(self, emissions, mask):
        """-> list of best tag sequences (python lists, each as long as its mask)."""
        emissions = emissions.float()
        mask = mask.bool()
        b, t, n = emissions.shape
        score = self.start_transitions + emissions[:, 0]
        history = []
        for i in range(1, t):
            cand = score.unsqueeze(2) + self.transitions.unsqueeze(0)  # [B, from, to]
            best, idx = cand.max(dim=1)
            nxt = best + emissions[:, i]
            score = torch.where(mask[:, i].unsqueeze(1), nxt, score)
            history.append(idx)
        score = score + self.end_transitions
        lengths = mask.long().sum(1).tolist()
        best_last = score.argmax(1).tolist()
        out = []
        for k in range(b):
            tag = best_last[k]
            path = [tag]
            for i in range(lengths[k] - 1, 0, -1):
                tag = int(history[i - 1][k, tag])
                path.append(tag)
            out.append(path[::-1])
        return out
