"""Everything the user reads, drawn from saved results only: pages, tables and figures.

page.py                 one page structure, rendered as markdown and as self-contained HTML
figures.py              the paper's routing figures (Figs. 2–6) and the learning curves
routing_page.py         the routing-analysis page (`omnirouter analyze`)
offload_page.py         the offloading study's tables, figure and page (`omnirouter offload`)
findings.py             the paper's findings set against an experiment's numbers, in sentences
experiment_results.py   an experiment's results as the report reads them, and experiment.json
experiment_sections.py  the experiment report's WER, CER, training and routing sections
"""
