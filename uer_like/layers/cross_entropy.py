"""Vocabulary projection + cross-entropy in one pass over row chunks, without keeping the logits.

For LM/MLM heads the logits ([tokens, vocab]) are the largest tensor of a step. This computes, chunk by
chunk, logits = h W^T + b, the loss (logsumexp - logit of the label), whether the label is the arg max,
and, when gradients are needed, d loss / d logits = (softmax - onehot) / count, folded at once into the
gradients of h, W and b. Same FLOPs as the plain way, a fraction of the memory traffic; tests compare
loss and gradients with F.cross_entropy.

Under autocast (bf16/fp16) the three matmuls run in that dtype (h and W cast once), while the logits are
taken to float32 for the softmax, the loss accumulates in float32, and the weight and bias gradients
accumulate chunk by chunk in float32 (each chunk's W-gradient product is rounded to the low precision once,
as an autocast Linear's weight gradient is).

On CPU, for float32 and bfloat16 logits, the softmax step of each chunk (loss, arg-max check, gradient of
the logits, bias gradient) is the native kernel uer_like._kernels.softmax_xent: one read of the logits and
one write of their gradient, in place, instead of about ten passes of torch ops and two dtype conversions
(csrc/kernels/training.c). Elsewhere, or without the built kernel, the same steps run as torch ops."""
import torch

from .kernels import NATIVE as _kernels

CHUNK_ROWS = 1024


def _use_kernel(h, compute_dtype, acc):
    return (_kernels is not None and h.device.type == "cpu" and acc == torch.float32
            and compute_dtype in (torch.float32, torch.bfloat16))


def _kernel_chunk(logits, bias, labels, ignore_index, scale, need_grad, gb):
    """The softmax step of one chunk by the native kernel: -> (loss sum, correct count); logits (contiguous,
    [rows, vocab]) become d loss / d logits when need_grad, and gb accumulates the bias gradient."""
    rows, vocab = logits.shape
    loss = torch.empty(rows, dtype=torch.float32)
    correct = torch.empty(rows, dtype=torch.uint8)
    _kernels.softmax_xent(logits.data_ptr(), int(logits.dtype == torch.bfloat16), rows, vocab,
                          bias.data_ptr() if bias is not None else 0, labels.data_ptr(), ignore_index,
                          scale.data_ptr(), loss.data_ptr(), correct.data_ptr(), int(need_grad),
                          gb.data_ptr() if (gb is not None and need_grad) else 0, torch.get_num_threads())
    return loss.sum(), correct.sum()


class _LinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, h, weight, bias, labels, ignore_index, need_grad, compute_dtype):
        # compute_dtype: the matmuls' dtype (the autocast dtype, or weight's); the rest runs in weight's dtype
        n = h.shape[0]
        acc = weight.dtype
        valid = labels != ignore_index
        count = valid.sum().clamp(min=1).to(acc)
        loss = torch.zeros((), dtype=acc, device=h.device)
        correct = torch.zeros((), dtype=torch.long, device=h.device)
        gh = torch.empty_like(h) if need_grad else None
        gw = torch.zeros_like(weight) if need_grad else None
        gb = torch.zeros_like(bias) if (need_grad and bias is not None) else None
        w = weight.to(compute_dtype)
        hx = h.to(compute_dtype)
        low = compute_dtype != acc
        if _use_kernel(h, compute_dtype, acc):
            labels = labels.to(torch.int64).contiguous()  # the kernel reads int64 labels
            bad = valid & ((labels < 0) | (labels >= weight.shape[0]))
            if bool(bad.any()):
                raise IndexError(f"label {int(labels[bad][0])} is outside the vocabulary of {weight.shape[0]}")
            scale = (valid.to(acc) / count).contiguous()
            b = bias.detach().contiguous() if bias is not None else None
            buf = torch.empty(min(n, CHUNK_ROWS), weight.shape[0], dtype=compute_dtype, device=h.device)
            for s in range(0, n, CHUNK_ROWS):
                hc = hx[s:s + CHUNK_ROWS]
                logits = torch.mm(hc, w.t(), out=buf[:hc.shape[0]])  # one buffer for every chunk
                part_loss, part_correct = _kernel_chunk(logits, b, labels[s:s + CHUNK_ROWS], ignore_index,
                                                        scale[s:s + CHUNK_ROWS], need_grad, gb)
                loss += part_loss
                correct += part_correct
                if need_grad:  # logits now hold d loss / d logits, in the compute dtype
                    if low:
                        gh[s:s + CHUNK_ROWS] = logits @ w
                        gw += logits.t() @ hc
                    else:
                        torch.mm(logits, w, out=gh[s:s + CHUNK_ROWS])
                        gw.addmm_(logits.t(), hc)
            ctx.save_for_backward(gh, gw, gb)
            ctx.has_bias = bias is not None
            ctx.mark_non_differentiable(correct)
            return loss / count, correct
        for s in range(0, n, CHUNK_ROWS):
            hc, yc, vc = hx[s:s + CHUNK_ROWS], labels[s:s + CHUNK_ROWS], valid[s:s + CHUNK_ROWS]
            logits = hc @ w.t()
            if low:
                logits = logits.to(acc)
            if bias is not None:
                logits += bias
            mx = logits.max(-1, keepdim=True).values
            picked = logits.gather(1, yc.clamp(min=0).unsqueeze(1))
            logits.sub_(mx)
            sumexp = logits.exp_().sum(-1, keepdim=True)  # logits now holds exp(logit - max)
            lse = sumexp.log() + mx
            vf = vc.to(acc).unsqueeze(1)
            loss += ((lse - picked) * vf).sum()
            correct += ((picked >= mx) & vc.unsqueeze(1)).sum()
            if need_grad:
                g = logits.div_(sumexp)  # softmax
                rows = torch.arange(g.shape[0], device=g.device)
                g[rows, yc.clamp(min=0)] -= 1.0
                g.mul_(vf / count)
                if gb is not None:
                    gb += g.sum(0)
                if low:
                    g = g.to(compute_dtype)
                    gh[s:s + CHUNK_ROWS] = g @ w
                    gw += g.t() @ hc
                else:
                    gh[s:s + CHUNK_ROWS] = g @ w
                    gw.addmm_(g.t(), hc)
        ctx.save_for_backward(gh, gw, gb)
        ctx.has_bias = bias is not None
        ctx.mark_non_differentiable(correct)
        return loss / count, correct

    @staticmethod
    def backward(ctx, grad_loss, grad_correct):
        gh, gw, gb = ctx.saved_tensors
        if gh is None:
            raise RuntimeError("linear_cross_entropy was called without need_grad and cannot be differentiated")
        if torch.is_grad_enabled():  # create_graph=True: the gradients were computed in the forward, without a graph
            raise RuntimeError("linear_cross_entropy (the fused vocabulary head) has no second derivatives: its "
                               "gradients are computed in the forward pass; create_graph=True is not supported")
        return (gh * grad_loss.to(gh.dtype), gw * grad_loss, (gb * grad_loss if ctx.has_bias else None),
                None, None, None, None)


def linear_cross_entropy(h, weight, bias, labels, ignore_index=-100):
    """-> (mean loss over labels != ignore_index, number of rows whose label is the arg max).
    h: [n, hidden]; weight: [vocab, hidden]; labels: [n]."""
    need = torch.is_grad_enabled() and (h.requires_grad or weight.requires_grad)
    dev = h.device.type
    # under autocast the matmuls run in the autocast dtype; the loss and the gradients of W and b accumulate
    # in the weight's dtype (float32); h's gradient comes back in h's dtype
    compute = torch.get_autocast_dtype(dev) if torch.is_autocast_enabled(dev) else weight.dtype
    with torch.autocast(device_type=dev, enabled=False):
        return _LinearCrossEntropy.apply(h, weight, bias, labels, ignore_index, need, compute)
