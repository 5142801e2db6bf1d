"""bench/report.py renders every script's last figures, whichever of them were rerun."""
import json

from tests.bench_scripts import load_bench_module


def kept(directory, name, command, date, figures):
    (directory / f"{name}.json").write_text(json.dumps(
        {"machine": "a test machine", "command": command, "date": date, "output": f"output of {command}",
         "figures": figures}))


def test_the_report_keeps_each_scripts_last_figures_in_the_scripts_order(tmp_path):
    report = load_bench_module("report")
    kept(tmp_path, "load", "load.py", "2026-11-30", [
        {"name": "load: errors", "value": 2, "unit": "count", "target": "== 0"}])
    kept(tmp_path, "service", "service.py --seconds 0.7", "2026-12-01", [
        {"name": "service ratio", "value": 0.61, "unit": "ratio", "target": ">= 0.5", "note": "batch 256"},
        {"name": "service items/s", "value": None, "unit": "items/s", "target": ""}])
    out = tmp_path / "benchmarks.md"
    report.write_report(tmp_path, out)
    text = out.read_text()
    rows = [line for line in text.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert rows == ["| service ratio | 0.61 ratio | >= 0.5 | meets | batch 256 |",
                    "| service items/s | — | — | not measured |  |",
                    "| load: errors | 2 | == 0 | **misses** |  |"]
    assert text.index("### `service.py --seconds 0.7`") < text.index("### `load.py`")
    assert "Run on 2026-11-30, on a test machine." in text and "output of load.py" in text
