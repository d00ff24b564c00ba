"""Parameter documentation read from the parameter file's comments (qsmoe.scenario.paramdocs)."""
from __future__ import annotations


from qsmoe.scenario import paramdocs

from reportkit import default_yaml, values  # noqa: F401 (fixtures)


class TestParameterDocs:
    def test_covers_every_key_of_default_yaml(self, default_yaml):
        docs = paramdocs.parameter_docs()
        for key in default_yaml:
            assert key in docs, key
            assert docs[key]["section"], key
            assert docs[key]["meaning"], key
        for key in ("param_set_name", "param_set_hash", "git_commit", "results_dir"):
            assert docs[key]["section"].startswith("Provenance")

    def test_sections_and_meanings_from_comments(self):
        docs = paramdocs.parameter_docs()
        assert docs["name"]["section"] == docs["description"]["section"] == "Identity"
        assert docs["hardware"]["section"] == docs["gpus"]["section"] == "Deployment"
        assert docs["gpus"]["meaning"] == "GPUs per model replica"
        assert docs["routing_skew"]["section"] == "Routing"
        assert docs["q_rule"]["section"] == "Quality equivalence"
        assert docs["mem_efficiency_nvidia"]["section"].startswith("Achievable fractions")
        assert docs["models"]["section"] == "What the book evaluates"
        # a key with both an EXTRA_MEANINGS entry and an inline comment keeps both
        assert docs["headline_context"]["meaning"] == "context length of the headline comparison (tokens)"

    def test_parser_on_a_hand_written_file(self, tmp_path):
        p = tmp_path / "set.yaml"
        p.write_text(
            "# header comment, not a section\n"
            "name: x\n"
            "description: >-\n"
            "  folded line: with a colon\n"
            "\n"
            "# First\n"
            "alpha: 1   # the alpha\n"
            "beta: [1, 2]\n"
            "\n"
            "# Second\n"
            "# (more about it)\n"
            "gamma: true  # gamma # with a hash\n",
            encoding="utf-8",
        )
        docs = paramdocs.parameter_docs(p)
        assert docs["name"]["section"] == "Identity"
        assert docs["alpha"] == {"section": "First", "meaning": "the alpha"}
        assert docs["beta"] == {"section": "First", "meaning": ""}
        assert docs["gamma"] == {"section": "Second", "meaning": "gamma # with a hash"}
        assert "folded line" not in docs  # continuation lines are not keys

    def test_parameter_rows_and_changed_keys(self, values):
        assert paramdocs.changed_keys(values) == []
        # numbers compare as numbers
        assert paramdocs.changed_keys(dict(values, gpus=float(values["gpus"]))) == []
        assert paramdocs.changed_keys(dict(values, gpus=8.5)) == ["gpus"]
        v = dict(values, gpus=2, hardware="mi355x")
        assert sorted(paramdocs.changed_keys(v)) == ["gpus", "hardware"]
        rows = {r["key"]: r for r in paramdocs.parameter_rows(v)}
        assert set(rows) == set(v)
        assert (rows["gpus"]["this build"], rows["gpus"]["default"]) == ("2", "8")
        assert (rows["hardware"]["this build"], rows["hardware"]["default"]) == ("mi355x", "h200")
        assert rows["contexts"]["this build"] == "4096, 8192, 16384, 32768, 65536, 131072"
        assert rows["include_comm"]["this build"] == "true"
        assert "mi355x" in rows["hardware"]["accepted values"]

    def test_defaults_are_accepted_values(self, values):
        for key, accepted in paramdocs.allowed_values().items():
            assert paramdocs.value_text(values[key]) in accepted.split(", "), key

    def test_value_text(self):
        assert paramdocs.value_text(True) == "true" and paramdocs.value_text(False) == "false"
        assert paramdocs.value_text(0.10) == "0.1" and paramdocs.value_text(8) == "8"
        assert paramdocs.value_text(["a", 1, 0.5]) == "a, 1, 0.5"
