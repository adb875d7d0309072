import pytest
import torch



@pytest.fixture
def engine():
    """One implementation of every metric: kept as a fixture name so that tests written for the
    three former engines read unchanged."""
    return "pytorch"


def make_data(n_per=12, C=4, d=6, *, seed=0, noise=0.7, bias=True, with_test=False, dtype=torch.float64):
    """Random clustered features, classifier, bias and optional test/noisy/ood data."""
    g = torch.Generator().manual_seed(seed)
    mu = torch.randn(C, d, generator=g, dtype=torch.float64) * 2
    y = torch.arange(C).repeat_interleave(n_per)
    y = y[torch.randperm(len(y), generator=g)]
    H = mu[y] + noise * torch.randn(len(y), d, generator=g, dtype=torch.float64)
    W = torch.randn(C, d, generator=g, dtype=torch.float64)
    b = torch.randn(C, generator=g, dtype=torch.float64) if bias else None
    out = dict(H=H.to(dtype), y=y, W=W, b=b, C=C)
    if with_test:
        yt = torch.arange(C).repeat_interleave(n_per // 2 + 1)
        Ht = mu[yt] + noise * torch.randn(len(yt), d, generator=g, dtype=torch.float64)
        ytrue = y.clone()
        flip = torch.rand(len(y), generator=g) < 0.3
        yobs = torch.where(flip, torch.randint(0, C, (len(y),), generator=g), y)
        Hood = torch.randn(9, d, generator=g, dtype=torch.float64) + 0.5
        out.update(Ht=Ht, yt=yt, ytrue=ytrue, yobs=yobs, Hood=Hood)
    return out


@pytest.fixture
def gen():
    return torch.Generator().manual_seed(1234)


def to_np(t):
    return None if t is None else t.detach().cpu().double().numpy()
