"""`--artifact auto`: the artifact the latest optimize-all report recommends for a cell at batch 1."""

from __future__ import annotations

from pathlib import Path

from segopt_core.video.sources import VideoError


def latest_report(reports_dir: Path) -> Path:
    """The newest optimize-all report folder (run ids start with their UTC time, so names sort by age)."""
    folders = sorted(
        (p for p in Path(reports_dir).glob("*-optimize-all-*") if (p / "results.parquet").is_file()),
        key=lambda p: p.name,
    )
    if not folders:
        raise VideoError(
            f"--artifact auto: no optimize-all report under {reports_dir}/ (no <run-id>/results.parquet); "
            "run `segopt optimize-all` first or pass --artifact DIR"
        )
    return folders[-1]


def recommended_artifact(reports_dir: str | Path, cell: str | None) -> tuple[Path, str]:
    """(artifact folder, variant) recommended for `cell` at batch 1 by the latest optimize-all report."""
    from segopt_core.reports import read_results
    from segopt_core.reports.recommend import recommendations

    report = latest_report(Path(reports_dir))
    recs = recommendations(read_results(report))
    recs = recs[recs["batch_size"] == 1]
    cells = sorted(str(c) for c in recs["cell"].unique())
    if cell is None and len(cells) == 1:
        cell = cells[0]
    if cell is None:
        raise VideoError(
            f"--artifact auto: report {report} recommends variants for several cells ({', '.join(cells)}); "
            "pass --cell NAME"
        )
    rows = recs[recs["cell"] == cell]
    if rows.empty:
        raise VideoError(
            f"--artifact auto: report {report} has no recommended variant for cell {cell} at batch 1 "
            f"(cells with one: {', '.join(cells) or 'none'})"
        )
    row = rows.iloc[0]
    artifact = Path(str(row["artifact"] or ""))
    if not str(row["artifact"] or "") or not artifact.is_dir():
        raise VideoError(
            f"--artifact auto: report {report} recommends {row['variant']} for {cell}, but its artifact "
            f"{artifact} is missing; re-run `segopt optimize-all` or pass --artifact DIR"
        )
    return artifact, str(row["variant"])
