"""In-process CLI calls the rerun chapter shows (qsmoe.cli.capture)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from qsmoe.scenario import analysis
from qsmoe.cli import capture
from qsmoe.scenario.params import DEFAULT_PARAMS_PATH
from qsmoe.book import words
from qsmoe.book import ch10_rerun as ch10

from reportkit import values  # noqa: F401 (fixtures)


class TestRunCli:
    def test_compare_prints_the_model_and_the_library_ratio(self, values):
        code, out = capture.run_cli(["compare", "--model", "deepseek-v3", "--context", "131072"])
        assert code == 0
        assert "deepseek-v3" in out and "8x h200" in out and "131072" in out
        assert words.ratio_text(analysis.headline(values)["ratio"]) in out

    def test_json_output_agrees_with_the_library(self, values):
        code, out = capture.run_cli(["compare", "--model", "deepseek-v3", "--context", "131072", "--json"])
        assert code == 0
        rec = json.loads(out)
        assert rec["ratio"] == pytest.approx(analysis.headline(values)["ratio"])

    def test_flags_change_the_output(self):
        code, out = capture.run_cli(["compare", "--model", "deepseek-v3", "--context", "131072", "--gpus", "2", "--hardware", "mi355x"])
        assert code == 0 and "2x mi355x" in out and "infeasible" in out

    @pytest.mark.parametrize("args, fragment", [
        (["compare", "--model", "no-such-model", "--context", "4096"], "unknown model"),
        (["compare", "--model", "llama-3.1-70b", "--context", "4096"], "dense model"),
        (["compare", "--model", "deepseek-v3"], "required"),
        (["--no-such-flag"], "unrecognized arguments"),
        ([], "usage"),
    ])
    def test_bad_input_returns_an_error_code_and_message(self, args, fragment):
        import sys

        before = (sys.stdout, sys.stderr)
        code, out = capture.run_cli(args)
        assert code != 0 and fragment in out
        assert (sys.stdout, sys.stderr) == before  # streams restored

    def test_help_exits_zero(self):
        code, out = capture.run_cli(["--help"])
        assert code == 0 and "usage" in out

    def test_console_block(self):
        block = capture.console_block("qsmoe x", "out")
        assert block == "```console\n$ qsmoe x\nout\n```\n"
        assert capture.console_block("c", "a ```` b").startswith("`````console")

    def test_build_slug_and_repo_path(self, tmp_path):
        d = tmp_path / "_build" / "mine-abc" / "results" / "09"
        d.mkdir(parents=True)
        assert ch10.build_slug(d, "fallback") == "mine-abc"
        assert ch10.build_slug(tmp_path, "fallback") == "fallback"
        path = ch10.repo_path("data/params/default.yaml")
        assert Path(path).is_absolute() and Path(path).samefile(DEFAULT_PARAMS_PATH)
