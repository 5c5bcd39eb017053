"""Text generation from a language model: greedy, temperature, top-k, top-p and beam search
(rnnkit.generate.decoding), and the fused decoding loop on the compiled engine
(rnnkit.generate.fused)."""

from .decoding import (
    DECODERS,
    GeneratedText,
    _decode_step_by_step,
    beam_search,
    filter_logits,
    generate,
    sample_next,
)

__all__ = ["DECODERS", "GeneratedText", "beam_search", "filter_logits", "generate", "sample_next"]
# _decode_step_by_step: the eager decoder, imported here for the tests that compare decoders
_ = _decode_step_by_step
