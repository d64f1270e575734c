"""The plain-text table the benchmark helpers print (standard library only); imported by
scripts/bench-rest.d/helpers.py, scripts/bench-auth.d/helpers.py and
scripts/bench-metrics-overhead.d/helpers.py."""


def print_table(rows, left):
    """Prints rows (the first is the header) in columns padded to their widest cell, a rule
    under the header; the columns whose indexes are in `left` are aligned left, the others
    (numbers) right."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for n, row in enumerate(rows):
        print(" | ".join(cell.ljust(widths[i]) if i in left else cell.rjust(widths[i])
                         for i, cell in enumerate(row)).rstrip())
        if n == 0:
            print("-+-".join("-" * w for w in widths))
