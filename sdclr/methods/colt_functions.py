"""COLT's pure parts (Bai, Liu, Wang, Hao, Feng, Chu, Hu, "On the Effectiveness of
Out-of-Distribution Data in Self-Supervised Long-Tail Learning", ICLR 2023, arXiv 2306.04934):
the tailness score, a seeded K-means, the per-cluster budgets, the nearest-centroid picks from
the OOD pool and the supervised-contrastive term over domain labels. The extension that uses
them is ``sdclr.methods.colt``; every formula is checked against the public code
(JianhongBai/COLT, ``train_simCLR.py``: ``sample_ood``, ``train``; ``utils.py``: ``nt_xent``).

With ``z = normalize(cat(z1, z2))`` (2N rows, row ``i``'s positive ``p(i) = (i + N) mod 2N``),
``s_ij = z_i . z_j / t`` and the NT-Xent denominator ``D_i = sum_{j != i} exp(s_ij)``::

    q_ij   = 1/2 [exp(s_ij) / D_i + exp(s_{i+N,j}) / D_{i+N}]     (j not in {i, i+N})
    u_i    = sum of the k largest q_ij over j                       (sample i < N; k = 10)
    score  <- beta score + (1 - beta) u_i    (score <- u_i when sample i is first seen)

A head sample has many near negatives of its own class, so a large ``u``; a low score is a
tail-like sample.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _logits(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """``s = z z^T / t`` in float32 (2N x 2N), the diagonal set to -inf."""
    z = F.normalize(torch.cat([z1, z2]).float(), dim=1)
    logits = z @ z.T / temperature
    eye = torch.eye(logits.shape[0], dtype=torch.bool, device=logits.device)
    return logits.masked_fill(eye, float("-inf"))


def topk_negative_mass(
    z1: torch.Tensor, z2: torch.Tensor, temperature: float, k: int
) -> torch.Tensor:
    """``u_i``: the sum of the ``k`` largest negative probabilities ``q_ij`` of sample ``i``
    (N values, no gradient; ``k`` is capped at the 2N - 2 negatives)."""
    with torch.no_grad():
        n = z1.shape[0]
        probs = torch.softmax(_logits(z1, z2, temperature), dim=1)  # exp(s_ij) / D_i
        probs = (probs[:n] + probs[n:]) / 2  # both views of sample i, negative by negative
        rows = torch.arange(n, device=probs.device)
        probs[rows, rows] = 0.0  # j = i and j = i + N: the sample's own views, not negatives
        probs[rows, rows + n] = 0.0
        return probs.topk(min(k, 2 * n - 2), dim=1).values.sum(dim=1)


def update_scores(
    scores: torch.Tensor, seen: torch.Tensor, indices: torch.Tensor, new: torch.Tensor, beta: float
) -> None:
    """In place: ``score_i <- beta score_i + (1 - beta) u_i`` for ``indices`` seen before,
    ``score_i <- u_i`` the first time; marks them seen."""
    new = new.to(scores.dtype)
    blended = beta * scores[indices] + (1.0 - beta) * new
    scores[indices] = torch.where(seen[indices], blended, new)
    seen[indices] = True


def _squared_distances(x: torch.Tensor, centers: torch.Tensor) -> torch.Tensor:
    return torch.cdist(x.double(), centers.double()).square()


def kmeans_plus_plus(x: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """k-means++ seeding: the first centre uniformly, each next one drawn with probability
    proportional to the squared distance to the nearest centre chosen (k x d, float64)."""
    x = x.double()
    first = int(torch.randint(x.shape[0], (1,), generator=generator))
    centers = [x[first]]
    nearest = _squared_distances(x, x[first : first + 1]).squeeze(1)
    for _ in range(1, k):
        if float(nearest.sum()) <= 0:  # fewer distinct points than clusters
            pick = int(torch.randint(x.shape[0], (1,), generator=generator))
        else:
            pick = int(torch.multinomial(nearest.cpu(), 1, generator=generator))
        centers.append(x[pick])
        nearest = torch.minimum(nearest, _squared_distances(x, x[pick : pick + 1]).squeeze(1))
    return torch.stack(centers)


def _fill_empty_clusters(labels: torch.Tensor, distances: torch.Tensor, k: int) -> None:
    """In place: each empty cluster takes the point farthest from its own centre among those
    not moved yet whose cluster keeps another member (first index on ties)."""
    counts = torch.bincount(labels, minlength=k)
    own = distances.gather(1, labels[:, None]).squeeze(1).clone()
    for empty in (counts == 0).nonzero().flatten().tolist():
        own[counts[labels] <= 1] = -1.0  # moving a lone member would empty its cluster
        farthest = int(own.argmax())
        counts[labels[farthest]] -= 1
        labels[farthest] = empty
        counts[empty] += 1
        own[farthest] = -1.0  # not moved twice


def kmeans(
    x: torch.Tensor, k: int, seed: int, iterations: int = 300
) -> tuple[torch.Tensor, torch.Tensor]:
    """Lloyd's K-means (Euclidean) from a k-means++ seeding drawn from ``seed``; returns
    (centres k x d float64, labels N). Stops when no label changes. An empty cluster takes
    the point farthest from its centre (as scikit-learn relocates empty clusters), so every
    cluster has a member when N >= k. Deterministic on a device: same input, same output."""
    if not 1 <= k <= x.shape[0]:
        raise ValueError(f"K-means of {k} clusters needs 1 <= k <= {x.shape[0]} points")
    generator = torch.Generator().manual_seed(seed)
    x = x.double()
    centers = kmeans_plus_plus(x.cpu(), k, generator).to(x.device)
    labels = torch.full((x.shape[0],), -1, dtype=torch.long, device=x.device)
    for _ in range(iterations):
        distances = _squared_distances(x, centers)
        new = distances.argmin(dim=1)
        _fill_empty_clusters(new, distances, k)
        if torch.equal(new, labels):
            break
        labels = new
        sums = torch.zeros_like(centers).index_add_(0, labels, x)
        centers = sums / torch.bincount(labels, minlength=k).clamp(min=1).unsqueeze(1).to(x)
    return centers, labels


def cluster_budgets(
    mean_scores: torch.Tensor, budget: int, temperature: float = 1.0
) -> torch.Tensor:
    """Images each cluster takes from the pool (int64, summing to ``budget``)::

        z_c  = (m_c - mean(m)) / std(m)        (m_c: the cluster's mean score; unbiased std;
                                                z = 0 when all m_c are equal)
        w_c  = softmax(-z / tau_c)
        b_c  = floor(K w_c) + (1 for the K - sum floor(K w) largest fractional parts)

    The lowest score (the most tail-like cluster) gets the most. The remainder goes by the
    largest remainders (ties: the lower cluster), which keeps b ordered as w; COLT's code adds
    it all to the last cluster instead (at most C - 1 images' difference)."""
    m = mean_scores.double()
    spread = m.std() if m.numel() > 1 else m.new_zeros(())
    z = (m - m.mean()) / spread if float(spread) > 0 else torch.zeros_like(m)
    share = torch.softmax(-z / temperature, dim=0) * budget
    counts = share.floor().long()
    rest = budget - int(counts.sum())
    fractions = (share - counts.double()).cpu()
    order = sorted(range(m.numel()), key=lambda c: (-float(fractions[c]), c))
    for c in order[:rest]:
        counts[c] += 1
    return counts


def nearest_picks(
    pool_features: torch.Tensor, centers: torch.Tensor, budgets: torch.Tensor
) -> list[torch.Tensor]:
    """Per cluster c (in order 0..C-1), the ``b_c`` pool images nearest its centre by cosine
    distance ``1 - f . c / |c|`` (``f`` already normalised), skipping those an earlier
    cluster took; ties by pool index. Returns each cluster's pool indices."""
    needed = int(budgets.sum())
    if needed > pool_features.shape[0]:
        raise ValueError(f"the pool has {pool_features.shape[0]} images, fewer than {needed}")
    c = F.normalize(centers.to(pool_features), dim=1)
    distance = 1.0 - pool_features @ c.T  # pool x C
    taken = torch.zeros(pool_features.shape[0], dtype=torch.bool, device=pool_features.device)
    picks = []
    for cluster, b in enumerate(budgets.tolist()):
        order = torch.sort(distance[:, cluster], stable=True).indices
        chosen = order[~taken[order]][:b]
        taken[chosen] = True
        picks.append(chosen)
    return picks


def domain_supcon(
    z1: torch.Tensor, z2: torch.Tensor, ood: torch.Tensor, temperature: float
) -> torch.Tensor:
    """COLT's supervised-contrastive term over domain labels (``ood``: N bools, one per sample;
    both views share it)::

        P_i    = {j != i : domain_j = domain_i}                  (over the 2N views)
        L_SCL  = 1/(2N) sum_i 1/|P_i| sum_{j in P_i} -log(exp(s_ij) / D_i)

    with NT-Xent's ``s`` and ``D`` (the same temperature). ``P_i`` always holds i's other view."""
    logits = _logits(z1, z2, temperature)
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    domain = torch.cat([ood, ood])
    eye = torch.eye(domain.shape[0], dtype=torch.bool, device=domain.device)
    same = (domain[:, None] == domain[None, :]) & ~eye
    terms = -(log_prob.masked_fill(~same, 0.0)).sum(dim=1) / same.sum(dim=1)
    return terms.mean()
