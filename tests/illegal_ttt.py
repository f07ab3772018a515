"""TEST-ONLY illegal TTT variant shared by the eval and gate tests: it trains on each chunk
BEFORE scoring it, which the score-first ledger and the causality probe must catch."""

from trainer.eval import TTTContext, register_ttt_variant

NAME = "test_train_before_score"


def train_before_score(ctx: TTTContext) -> None:
    for c in range(ctx.n_chunks):
        ctx.train_chunk(c)
        ctx.score_chunk(c)


register_ttt_variant(NAME, train_before_score)
