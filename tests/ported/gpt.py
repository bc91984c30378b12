"""A small GPT, written the way minGPT and nanoGPT write it: token and position embeddings,
blocks of causal self-attention (one Linear makes q, k and v, a lower-triangular buffer
masks the future) and a GELU MLP, each behind a LayerNorm with a residual connection; the
output layer shares its weight with the token embedding. AdamW with weight decay on the
matrices only, a warm-up-then-cosine learning rate, gradient clipping, and generation by
sampling (or greedily) one token at a time.

This file is a PyTorch program. Its tests run it as it is and, with only its import lines
changed, on xpgrad.
"""

import argparse
import inspect
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
from torch.nn import functional as F


@dataclass
class GPTConfig:
    block_size: int = 1024
    vocab_size: int = 50304
    n_layer: int = 12
    n_head: int = 12
    n_embd: int = 768
    dropout: float = 0.0
    bias: bool = True   # Linear and LayerNorm biases (GPT-2 has them)


class LayerNorm(nn.Module):
    """Layer normalization whose bias can be left out on its own (nn.LayerNorm's
    elementwise_affine switches weight and bias together)."""

    def __init__(self, ndim, bias):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(ndim))
        self.bias = nn.Parameter(torch.zeros(ndim)) if bias else None

    def forward(self, input):
        return F.layer_norm(input, self.weight.shape, self.weight, self.bias, 1e-5)


class CausalSelfAttention(nn.Module):

    def __init__(self, config):
        super().__init__()
        assert config.n_embd % config.n_head == 0
        # one matrix multiplication gives the queries, keys and values of every head
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        # the heads' outputs, concatenated, mixed back into the residual stream
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.attn_dropout = nn.Dropout(config.dropout)
        self.resid_dropout = nn.Dropout(config.dropout)
        self.n_head = config.n_head
        self.n_embd = config.n_embd
        # 1 where query t may look at key s (s <= t); kept out of the state dict
        self.register_buffer("bias", torch.tril(torch.ones(config.block_size, config.block_size))
                             .view(1, 1, config.block_size, config.block_size),
                             persistent=False)

    def forward(self, x):
        B, T, C = x.size()  # batch, time, channels (n_embd)

        # split the channels into heads and make the head a batch axis
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hs)
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hs)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hs)

        # scaled dot products, (B, nh, T, hs) @ (B, nh, hs, T) -> (B, nh, T, T); the
        # future is masked with -inf, which the softmax turns into weight 0
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
        att = att.masked_fill(self.bias[:, :, :T, :T] == 0, float('-inf'))
        att = F.softmax(att, dim=-1)
        att = self.attn_dropout(att)
        y = att @ v  # (B, nh, T, T) @ (B, nh, T, hs) -> (B, nh, T, hs)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # heads side by side again

        y = self.resid_dropout(self.c_proj(y))
        return y


class MLP(nn.Module):

    def __init__(self, config):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.gelu = nn.GELU()
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x):
        x = self.c_fc(x)
        x = self.gelu(x)
        x = self.c_proj(x)
        x = self.dropout(x)
        return x


class Block(nn.Module):

    def __init__(self, config):
        super().__init__()
        self.ln_1 = LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        x = x + self.mlp(self.ln_2(x))
        return x


class GPT(nn.Module):

    def __init__(self, config):
        super().__init__()
        assert config.vocab_size is not None
        assert config.block_size is not None
        self.config = config

        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(config.vocab_size, config.n_embd),
            wpe=nn.Embedding(config.block_size, config.n_embd),
            drop=nn.Dropout(config.dropout),
            h=nn.ModuleList([Block(config) for _ in range(config.n_layer)]),
            ln_f=LayerNorm(config.n_embd, bias=config.bias),
        ))
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        # tie the weights (Press & Wolf): the output layer scores each token with
        # the same vector that embeds it, one Parameter listed once
        self.transformer.wte.weight = self.lm_head.weight

        # GPT-2's initialization: N(0, 0.02) weights, zero biases
        self.apply(self._init_weights)
        # the projections that add into the residual stream start smaller, by
        # 1/sqrt(number of residual additions)
        for pn, p in self.named_parameters():
            if pn.endswith('c_proj.weight'):
                torch.nn.init.normal_(p, mean=0.0, std=0.02/math.sqrt(2 * config.n_layer))

        print("number of parameters: %.2fM" % (self.get_num_params()/1e6,))

    def get_num_params(self, non_embedding=True):
        """The number of parameters; the position embeddings are not counted by default
        (the token embeddings are: they are the output layer's weight too)."""
        n_params = sum(p.numel() for p in self.parameters())
        if non_embedding:
            n_params -= self.transformer.wpe.weight.numel()
        return n_params

    def _init_weights(self, module):
        if isinstance(module, nn.Linear):
            torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                torch.nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def forward(self, idx, targets=None):
        device = idx.device
        b, t = idx.size()
        assert t <= self.config.block_size, \
            f"Cannot forward sequence of length {t}, block size is only {self.config.block_size}"
        pos = torch.arange(0, t, dtype=torch.long, device=device)  # (t,)

        tok_emb = self.transformer.wte(idx)  # (b, t, n_embd)
        pos_emb = self.transformer.wpe(pos)  # (t, n_embd), broadcast over the batch
        x = self.transformer.drop(tok_emb + pos_emb)
        for block in self.transformer.h:
            x = block(x)
        x = self.transformer.ln_f(x)

        if targets is not None:
            # training: logits at every position, and the mean next-token loss
            logits = self.lm_head(x)
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1),
                                   ignore_index=-1)
        else:
            # generating: only the last position's logits are needed; indexing with the
            # list [-1] keeps the time axis, (b, 1, vocab_size)
            logits = self.lm_head(x[:, [-1], :])
            loss = None

        return logits, loss

    def configure_optimizers(self, weight_decay, learning_rate, betas, device_type):
        # every trainable parameter, by name (the tied weight once)
        param_dict = {pn: p for pn, p in self.named_parameters()}
        param_dict = {pn: p for pn, p in param_dict.items() if p.requires_grad}
        # weight decay for the matrices (Linear and embedding weights), none for the
        # biases and LayerNorm gains
        decay_params = [p for n, p in param_dict.items() if p.dim() >= 2]
        nodecay_params = [p for n, p in param_dict.items() if p.dim() < 2]
        optim_groups = [
            {'params': decay_params, 'weight_decay': weight_decay},
            {'params': nodecay_params, 'weight_decay': 0.0}
        ]
        num_decay_params = sum(p.numel() for p in decay_params)
        num_nodecay_params = sum(p.numel() for p in nodecay_params)
        print(f"num decayed parameter tensors: {len(decay_params)}, "
              f"with {num_decay_params:,} parameters")
        print(f"num non-decayed parameter tensors: {len(nodecay_params)}, "
              f"with {num_nodecay_params:,} parameters")
        # a fused AdamW where the library has one and the model is on a GPU
        fused_available = 'fused' in inspect.signature(torch.optim.AdamW).parameters
        use_fused = fused_available and device_type == 'cuda'
        extra_args = dict(fused=True) if use_fused else dict()
        optimizer = torch.optim.AdamW(optim_groups, lr=learning_rate, betas=betas, **extra_args)
        print(f"using fused AdamW: {use_fused}")
        return optimizer

    @torch.no_grad()
    def generate(self, idx, max_new_tokens, temperature=1.0, do_sample=True, top_k=None):
        """Extend each row of ``idx`` (b, t) by ``max_new_tokens`` tokens, one at a time,
        each predicted from the last ``block_size`` tokens: sampled from the softmax of the
        logits / temperature (only among the ``top_k`` largest when given), or the most
        likely one when not ``do_sample``. Call model.eval() first."""
        for _ in range(max_new_tokens):
            # the model sees at most block_size tokens: keep the latest
            if idx.size(1) <= self.config.block_size:
                idx_cond = idx
            else:
                idx_cond = idx[:, -self.config.block_size:]
            logits, _ = self(idx_cond)
            # the next token's logits, sharpened or flattened by the temperature
            logits = logits[:, -1, :] / temperature
            # keep the k best candidates, rule out the rest
            if top_k is not None:
                v, _ = torch.topk(logits, min(top_k, logits.size(-1)))
                logits[logits < v[:, [-1]]] = -float('Inf')
            probs = F.softmax(logits, dim=-1)
            if do_sample:
                idx_next = torch.multinomial(probs, num_samples=1)
            else:
                _, idx_next = torch.topk(probs, k=1, dim=-1)
            idx = torch.cat((idx, idx_next), dim=1)

        return idx


# ------------------------------------------------------------------------------ training
def get_batch(data, ix, block_size, device):
    """Inputs: the ``block_size`` tokens from each start in ``ix``; targets: the same,
    one token later."""
    x = torch.stack([torch.from_numpy((data[i:i+block_size]).astype(np.int64)) for i in ix])
    y = torch.stack([torch.from_numpy((data[i+1:i+1+block_size]).astype(np.int64)) for i in ix])
    return x.to(device), y.to(device)


def get_lr(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):
    """Linear warm-up for ``warmup_iters`` steps, then a cosine decay down to ``min_lr``."""
    if it < warmup_iters:
        return learning_rate * (it + 1) / (warmup_iters + 1)
    if it > lr_decay_iters:
        return min_lr
    decay_ratio = (it - warmup_iters) / (lr_decay_iters - warmup_iters)
    assert 0 <= decay_ratio <= 1
    coeff = 0.5 * (1.0 + math.cos(math.pi * decay_ratio))  # from 1 down to 0
    return min_lr + coeff * (learning_rate - min_lr)


@torch.no_grad()
def estimate_loss(model, batches):
    """The mean loss over ``batches`` in eval mode (no dropout), recording no graph."""
    model.eval()
    losses = torch.zeros(len(batches))
    for k, (X, Y) in enumerate(batches):
        logits, loss = model(X, Y)
        losses[k] = loss.item()
    model.train()
    return losses.mean()


class Trainer:
    """The training loop: a batch at a time from ``batches``, callbacks after each step."""

    def __init__(self, args, model, optimizer):
        self.args = args
        self.model = model
        self.optimizer = optimizer
        self.callbacks = []
        self.iter_num = 0
        self.loss = None

    def add_callback(self, callback):
        self.callbacks.append(callback)

    def run(self, batches):
        model, args = self.model, self.args
        model.train()
        for x, y in batches:
            # this step's learning rate, in every parameter group
            lr = get_lr(self.iter_num, args.learning_rate, args.min_lr, args.warmup_iters,
                        args.lr_decay_iters)
            for param_group in self.optimizer.param_groups:
                param_group['lr'] = lr

            logits, self.loss = model(x, y)

            model.zero_grad(set_to_none=True)
            self.loss.backward()
            if args.grad_clip != 0.0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), args.grad_clip)
            self.optimizer.step()

            for callback in self.callbacks:
                callback(self.iter_num, self.loss)
            if self.iter_num % args.log_interval == 0:
                print(f"iter {self.iter_num}: loss {self.loss.item():.4f}, lr {lr:.2e}")
            self.iter_num += 1


def make_parser():
    parser = argparse.ArgumentParser(description='A small GPT on random tokens')
    parser.add_argument('--n-layer', type=int, default=2)
    parser.add_argument('--n-head', type=int, default=2)
    parser.add_argument('--n-embd', type=int, default=32)
    parser.add_argument('--block-size', type=int, default=16)
    parser.add_argument('--vocab-size', type=int, default=50)
    parser.add_argument('--dropout', type=float, default=0.0)
    parser.add_argument('--no-bias', dest='bias', action='store_false')
    parser.add_argument('--batch-size', type=int, default=8)
    parser.add_argument('--max-iters', type=int, default=20)
    parser.add_argument('--learning-rate', type=float, default=6e-4)
    parser.add_argument('--min-lr', type=float, default=6e-5)
    parser.add_argument('--warmup-iters', type=int, default=4)
    parser.add_argument('--lr-decay-iters', type=int, default=20)
    parser.add_argument('--weight-decay', type=float, default=1e-1)
    parser.add_argument('--beta1', type=float, default=0.9)
    parser.add_argument('--beta2', type=float, default=0.95)
    parser.add_argument('--grad-clip', type=float, default=1.0)
    parser.add_argument('--log-interval', type=int, default=5)
    parser.add_argument('--device', type=str, default='cpu')
    parser.add_argument('--seed', type=int, default=1337)
    return parser


def main(argv=None):
    args = make_parser().parse_args(argv)
    torch.manual_seed(args.seed)
    device_type = 'cuda' if 'cuda' in args.device else 'cpu'
    data = np.random.default_rng(args.seed).integers(0, args.vocab_size, size=2000)

    config = GPTConfig(block_size=args.block_size, vocab_size=args.vocab_size,
                       n_layer=args.n_layer, n_head=args.n_head, n_embd=args.n_embd,
                       dropout=args.dropout, bias=args.bias)
    model = GPT(config)
    model.to(args.device)
    optimizer = model.configure_optimizers(args.weight_decay, args.learning_rate,
                                           (args.beta1, args.beta2), device_type)

    def batches(n):
        for _ in range(n):
            ix = torch.randint(len(data) - args.block_size, (args.batch_size,))
            yield get_batch(data, ix, args.block_size, args.device)

    trainer = Trainer(args, model, optimizer)
    trainer.run(batches(args.max_iters))
    print(f"loss over 4 fresh batches: {estimate_loss(model, list(batches(4))):.4f}")

    model.eval()
    context = torch.zeros((1, 1), dtype=torch.long, device=args.device)
    print(model.generate(context, max_new_tokens=10, top_k=5)[0].tolist())
    return model


if __name__ == '__main__':
    main()
