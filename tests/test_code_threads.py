"""Named codes are shared by every thread (gpucoded.callsetup): their weight cache is
safe to use from several threads at once, bounded, and a code still pickles."""

from __future__ import annotations

import itertools
import pickle
import threading

import numpy as np

from gpucoded.codes import base, make_code


def test_weight_cache_shared_by_threads(monkeypatch):
    monkeypatch.setattr(base, "WEIGHT_CACHE_SIZE", 4)  # evictions on every few look-ups
    code = make_code("chebyshev", m=3, P=8)
    sets = list(itertools.combinations(range(8), 5))[:24]
    want = {S: make_code("chebyshev", m=3, P=8).decode_weights(S).W for S in sets}
    errors: list[BaseException] = []
    start = threading.Barrier(6)

    def work(k: int) -> None:
        try:
            start.wait()
            for S in sets[k:] + sets[:k]:
                np.testing.assert_array_equal(code.decode_weights(S).W, want[S])
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[0]
    assert len(code._cache) <= 4


def test_code_pickles_with_its_weights():
    code = make_code("matdot", m=2, P=4)
    W = code.decode_weights((0, 1, 3)).W
    back = pickle.loads(pickle.dumps(code))
    np.testing.assert_array_equal(back.decode_weights((0, 1, 3)).W, W)
    assert back.weights_cached((0, 1, 3))
