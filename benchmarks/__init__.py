"""The benchmark: providers and the routed pipeline compared on corpora with ground truth.

    corpus.py       manifests walked into documents; ground truth per page
    metrics.py      CER, WER, bag-of-words F1, cell-level table F1 (pure)
    workers.py      what runs in the worker processes: render, recognize, tables, read_page
    runner.py       every provider on every page, interleaved; the oracle
    results.py      the results.json schema; aggregation per provider and category
    report.py       terminal table, report.md, results.json
    plots.py        PNG plots
    progress.py     the progress line
    environment.py  machine, versions, git commit of a run
    cli.py          `ocr-gateway bench` / `python -m benchmarks`

Nothing outside `benchmarks` imports it.
"""
