"""Published kernel tables (qsmoe.evidence.kernel_tables, data/kernels/)."""
from __future__ import annotations

import pytest

from qsmoe.errors import QsError
from qsmoe.evidence.kernel_tables import grouped_gemm_check


def test_deepgemm_ratios_by_hand() -> None:
    """Masked 4 x 256 gate-up 932 / dense 1410 is the lowest, masked 1 x 1024 gate-up 1233 / 1410
    the highest; contiguous 1346 / 1410 and 1214 / 1168 bound the prefill layout."""
    c = grouped_gemm_check()
    assert c["masked"]["low"] == pytest.approx(932 / 1410) and c["masked"]["high"] == pytest.approx(1233 / 1410)
    assert (c["masked"]["m_low"], c["masked"]["m_high"]) == (256, 1024)
    assert c["contiguous"]["low"] == pytest.approx(1346 / 1410) and c["contiguous"]["high"] == pytest.approx(1214 / 1168)
    assert len(c["commit"]) == 40


def test_a_grouped_row_without_its_dense_shape_is_a_named_error(tmp_path) -> None:
    p = tmp_path / "t.yaml"
    p.write_text("source: s\nurl: u\ncommit: c\ndense:\n  - {m: 4096, n: 1, k: 1, tflops: 1}\n"
                 "contiguous: []\nmasked:\n  - {groups: 1, m: 8, n: 2, k: 2, tflops: 1}\n", encoding="utf-8")
    with pytest.raises(QsError) as err:
        grouped_gemm_check(p)
    assert err.value.field == "masked"
