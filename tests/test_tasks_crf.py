"""The CRF against brute-force enumeration of every tag sequence, in float64."""

import itertools

import pytest
import torch

from rnnkit.models.crf import CRF, IMPOSSIBLE, bio_constraints

TAGS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]


def make_crf(K: int, constrained: bool = False) -> CRF:
    torch.manual_seed(K)
    if constrained:
        allowed, start = bio_constraints(TAGS[:K])
        crf = CRF(K, allowed, start)
    else:
        crf = CRF(K)
    with torch.no_grad():  # scores large enough that the sums matter
        for p in crf.parameters():
            p.normal_()
    return crf.double()


def brute_force(crf: CRF, emissions: torch.Tensor, n: int):
    """(log Z, best score, best path) of one sequence (T, K), its first n steps, by listing all
    K^n paths and scoring each with the definition, skipping forbidden ones."""
    K = emissions.shape[-1]
    scores = {}
    for path in itertools.product(range(K), repeat=n):
        if not crf.allowed_start[path[0]] or any(
            not crf.allowed[a, b] for a, b in itertools.pairwise(path)
        ):
            continue
        s = crf.start[path[0]] + crf.end[path[-1]]
        s = s + sum(emissions[t, path[t]] for t in range(n))
        s = s + sum(crf.transitions[path[t - 1], path[t]] for t in range(1, n))
        scores[path] = s
    log_z = torch.logsumexp(torch.stack(list(scores.values())), 0)
    best = max(scores, key=lambda p: scores[p].item())
    return log_z, scores[best], list(best)


@pytest.mark.parametrize("constrained", [False, True])
def test_log_partition_and_viterbi_equal_enumeration(constrained):
    K = 5 if constrained else 3
    crf = make_crf(K, constrained)
    lengths = [4, 1, 3] if constrained else [5, 2, 4]
    T = max(lengths)
    emissions = torch.randn(
        len(lengths), T, K, dtype=torch.float64, generator=torch.Generator().manual_seed(1)
    )
    mask = torch.arange(T)[None] < torch.tensor(lengths)[:, None]
    log_z = crf.log_partition(emissions, mask)
    paths = crf.decode(emissions, mask)
    for b, n in enumerate(lengths):
        expected_z, best_score, best_path = brute_force(crf, emissions[b], n)
        assert log_z[b].item() == pytest.approx(expected_z.item(), abs=1e-10)
        assert paths[b] == best_path
        tags = torch.tensor(best_path + [0] * (T - n))[None]
        score = crf.score(emissions[b : b + 1], tags, mask[b : b + 1])
        assert score.item() == pytest.approx(best_score.item(), abs=1e-10)


def test_padding_is_ignored():
    crf = make_crf(3)
    g = torch.Generator().manual_seed(2)
    short = torch.randn(1, 3, 3, dtype=torch.float64, generator=g)
    padded = torch.cat([short, 100 * torch.randn(1, 4, 3, dtype=torch.float64, generator=g)], 1)
    mask = torch.tensor([[True] * 3 + [False] * 4])
    tags = torch.tensor([[0, 2, 1, 2, 2, 0, 1]])
    full = torch.ones(1, 3, dtype=torch.bool)
    assert torch.allclose(crf(padded, tags, mask), crf(short, tags[:, :3], full))
    assert crf.decode(padded, mask) == crf.decode(short, full)


def test_nll_is_a_probability_and_gradcheck():
    crf = make_crf(3)
    g = torch.Generator().manual_seed(3)
    emissions = torch.randn(2, 4, 3, dtype=torch.float64, generator=g, requires_grad=True)
    mask = torch.tensor([[True] * 4, [True, True, False, False]])
    # the probabilities of all sequences of the short row sum to 1
    total = sum(
        torch.exp(-crf(emissions[1:2, :2].detach(), torch.tensor([p]), mask[1:2, :2])).item()
        for p in itertools.product(range(3), repeat=2)
    )
    assert total == pytest.approx(1.0, abs=1e-12)
    tags = torch.tensor([[0, 1, 2, 1], [2, 2, 0, 0]])
    params = (emissions, crf.start, crf.transitions, crf.end)

    def nll(e, start, trans, end):
        crf.start.data, crf.transitions.data, crf.end.data = start, trans, end
        return crf(e, tags, mask)

    assert torch.autograd.gradcheck(nll, params)


def test_bio_constraints_forbid_i_after_o_and_other_types():
    allowed, start = bio_constraints(TAGS)
    index = {t: i for i, t in enumerate(TAGS)}
    assert not start[index["I-PER"]] and start[index["B-PER"]] and start[index["O"]]
    assert allowed[index["B-PER"]][index["I-PER"]] and allowed[index["I-PER"]][index["I-PER"]]
    assert not allowed[index["O"]][index["I-PER"]]
    assert not allowed[index["B-LOC"]][index["I-PER"]]
    assert allowed[index["I-LOC"]][index["B-PER"]] and allowed[index["O"]][index["O"]]


def test_constrained_decoding_never_breaks_bio():
    crf = make_crf(5, constrained=True)
    g = torch.Generator().manual_seed(4)
    emissions = torch.randn(50, 6, 5, dtype=torch.float64, generator=g)
    emissions[:, :, 2] += 3  # I-PER is the per-token favourite everywhere
    mask = torch.ones(50, 6, dtype=torch.bool)
    for path in crf.decode(emissions, mask):
        tags = [TAGS[i] for i in path]
        assert not tags[0].startswith("I-")
        for a, b in itertools.pairwise(tags):
            if b.startswith("I-"):
                assert a in ("B-" + b[2:], b)


def test_forbidden_moves_score_impossible():
    crf = make_crf(5, constrained=True)
    emissions = torch.zeros(1, 2, 5, dtype=torch.float64)
    mask = torch.ones(1, 2, dtype=torch.bool)
    bad = crf.score(emissions, torch.tensor([[0, 2]]), mask)  # O -> I-PER
    assert bad.item() < IMPOSSIBLE / 2


def test_crf_errors():
    with pytest.raises(ValueError, match="num_tags"):
        CRF(0)
    crf = CRF(3)
    with pytest.raises(ValueError, match="at least one step"):
        crf.log_partition(torch.zeros(1, 2, 3), torch.tensor([[False, False]]))
    with pytest.raises(ValueError, match="mask must be a bool"):
        crf.log_partition(torch.zeros(1, 2, 3), torch.ones(1, 2))
