"""Benchmark: jieba.lcut vs uer_like's native jieba-exact segmentation, on one core.

    python benchmarks/segment.py [--corpora DIR] [--check-datasets] [--write-readme]

* input: every line of the shared corpora (default ../shared/data/corpora/*.txt, ~6.4 MB);
* throughput (MB/s of UTF-8 input) of jieba.lcut(line) and of the native segmenter, HMM on and
  off, measured in the same process, pinned to one CPU, cyclic GC paused during every timed
  loop (all results are kept for the agreement check, for jieba and native alike):
    - "native segment()": uer_like.segmentation.segment(line) called per line;
    - "native segment_lines()": one batched call for all lines;
* rjieba (the jieba-rs Rust port, `pip install rjieba`; not a dependency) is timed the same way
  and checked for agreement when it is installed;
* agreement: fraction of lines whose token list is identical to jieba's (HMM on and off);
  --check-datasets also checks every line of the fine-tuning tsvs (not timed);
* --write-readme replaces the "## Segmentation" section of benchmarks/README.md.
"""
import argparse
import gc
import glob
import os
import platform
import subprocess
import sys
import time

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, REPO)
DEFAULT_DATA = os.path.normpath(os.path.join(REPO, "..", "shared", "data"))


def read_lines(path):
    with open(path, "rb") as f:
        data = f.read()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("utf-8", "surrogateescape")
    return text.split("\n"), len(data)


def timed(fn, repeat=1):
    """(best CPU seconds, best wall seconds, result). CPU time (time.process_time) is the
    headline number: the machine is shared, and CPU time is what one core spends."""
    best, best_wall, out = None, None, None
    for _ in range(repeat):
        out = None
        gc.collect()
        gc.disable()
        try:
            w = time.perf_counter()
            t = time.process_time()
            out = fn()
            dt = time.process_time() - t
            dw = time.perf_counter() - w
        finally:
            gc.enable()
        best = dt if best is None else min(best, dt)
        best_wall = dw if best_wall is None else min(best_wall, dw)
    return best, best_wall, out


def cpu_model():
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--corpora", default=os.path.join(DEFAULT_DATA, "corpora"))
    ap.add_argument("--datasets", default=os.path.join(DEFAULT_DATA, "datasets"))
    ap.add_argument("--check-datasets", action="store_true",
                    help="also check agreement on every line of the fine-tuning tsvs")
    ap.add_argument("--repeat", type=int, default=3, help="native timing repeats (best of)")
    ap.add_argument("--write-readme", action="store_true")
    args = ap.parse_args()

    cpus = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpus[-1]})

    import jieba

    jieba.setLogLevel(60)
    jieba.initialize()
    from uer_like import segmentation as seg

    if not seg.NATIVE_AVAILABLE:
        sys.exit("uer_like._native is not built: python setup.py build_ext --inplace")
    s = seg.get_segmenter()
    t = time.perf_counter()
    s._load()
    load_s = time.perf_counter() - t

    files = sorted(glob.glob(os.path.join(args.corpora, "*.txt")))
    if not files:
        sys.exit("no corpora under %s" % args.corpora)
    lines, nbytes = [], 0
    for p in files:
        ls, n = read_lines(p)
        lines += ls
        nbytes += n
    mb = nbytes / 1e6
    print("%d files, %d lines, %.2f MB; native dictionary load %.3f s" % (len(files), len(lines), mb, load_s))

    rows, agree, rjieba_agree = [], {}, {}
    try:
        import rjieba
    except ImportError:
        rjieba = None
    for hmm in (True, False):
        tj, wj, ref = timed(lambda: [jieba.lcut(l, HMM=hmm) for l in lines])
        tn, wn, got = timed(lambda: [seg.segment(l, hmm) for l in lines], args.repeat)
        tb, wb, got_b = timed(lambda: seg.segment_lines(lines, hmm), args.repeat)
        if rjieba is not None:
            tr, wr, got_r = timed(lambda: [rjieba.cut(l, hmm=hmm) for l in lines])
            same_r = sum(1 for a, b in zip(got_r, ref) if a == b)
            rjieba_agree[hmm] = same_r
            del got_r
        same = sum(1 for a, b in zip(got, ref) if a == b)
        same_b = sum(1 for a, b in zip(got_b, ref) if a == b)
        agree[hmm] = (min(same, same_b), len(lines))
        ntok = sum(len(x) for x in ref)
        name = "on" if hmm else "off"
        rows.append(("jieba.lcut", name, mb / tj, mb / wj, 1.0, ntok))
        rows.append(("native segment()", name, mb / tn, mb / wn, tj / tn, ntok))
        rows.append(("native segment_lines()", name, mb / tb, mb / wb, tj / tb, ntok))
        if rjieba is not None:
            rows.append(("rjieba.cut (Rust port)", name, mb / tr, mb / wr, tj / tr, None))
        print("HMM %-3s jieba %.2f MB/s | native %.1f MB/s (x%.0f) | batch %.1f MB/s (x%.0f) | "
              "agreement %d/%d" % (name, mb / tj, mb / tn, tj / tn, mb / tb, tj / tb, same, len(lines)))
        bad = [i for i, (a, b) in enumerate(zip(got, ref)) if a != b]
        for i in bad[:5]:
            print("  MISMATCH line %d: %r\n    native %r\n    jieba  %r" % (i, lines[i][:200], got[i][:40], ref[i][:40]))
        del ref, got, got_b

    ds_note = ""
    if args.check_datasets:
        tsvs = sorted(glob.glob(os.path.join(args.datasets, "**", "*.tsv"), recursive=True))
        tot = ok = 0
        for p in tsvs:
            ls, _ = read_lines(p)
            for hmm in (True, False):
                got = seg.segment_lines(ls, hmm)
                for l, g in zip(ls, got):
                    tot += 1
                    ok += g == jieba.lcut(l, HMM=hmm)
        ds_note = "%d/%d (line, HMM setting) pairs of %d tsv files" % (ok, tot, len(tsvs))
        print("datasets agreement:", ds_note)

    model = cpu_model()
    cmd = "python benchmarks/segment.py" + (" --check-datasets" if args.check_datasets else "") + \
        (" --write-readme" if args.write_readme else "")
    md = [
        "## Segmentation",
        "",
        "jieba-exact Chinese word segmentation (`uer_like.segmentation`, C extension "
        "`uer_like._native.JiebaSegmenter`) against jieba %s itself." % jieba.__version__,
        "",
        "Command: `%s`  " % cmd,
        "Machine: %s, %d cores (benchmark pinned to 1 core), Python %s.  " % (
            model, os.cpu_count(), platform.python_version()),
        "Input: every line of %s (%d lines, %.2f MB UTF-8). MB/s = input bytes / process CPU "
        "seconds (wall-clock alongside; the machine is shared with other jobs, so wall time is "
        "noisy). Cyclic GC paused in every timed loop, all results kept for the agreement check; "
        "native numbers are the best of %d runs, jieba a single run." % (
            ", ".join(os.path.basename(p) for p in files), len(lines), mb, args.repeat),
        "",
        "| segmenter | HMM | MB/s (CPU time) | MB/s (wall) | speed-up (CPU) | tokens |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for name, h, r, rw, x, n in rows:
        md.append("| %s | %s | %.2f | %.2f | %.1fx | %s |" % (name, h, r, rw, x, "-" if n is None else n))
    md += [
        "",
        "Agreement with jieba (identical token lists): HMM on %d/%d lines (%.3f%%), HMM off %d/%d "
        "lines (%.3f%%)." % (agree[True][0], agree[True][1], 100.0 * agree[True][0] / agree[True][1],
                             agree[False][0], agree[False][1], 100.0 * agree[False][0] / agree[False][1]),
    ]
    if rjieba_agree:
        n = len(lines)
        md.append("rjieba agreement with jieba: HMM on %d/%d lines (%.2f%%), HMM off %d/%d lines (%.2f%%)." % (
            rjieba_agree[True], n, 100.0 * rjieba_agree[True] / n,
            rjieba_agree[False], n, 100.0 * rjieba_agree[False] / n))
    if ds_note:
        md.append("Fine-tuning tsvs (not timed): %s identical." % ds_note)
    md += ["Native dictionary build (dict.txt parse + trie + HMM tables): %.2f s per process." % load_s, ""]
    section = "\n".join(md)
    print()
    print(section)
    if args.write_readme:
        write_section(os.path.join(HERE, "README.md"), section)


def write_section(path, section):
    """Replace (or append) the '## Segmentation' section, leaving other sections untouched."""
    text = open(path, encoding="utf-8").read() if os.path.exists(path) else "# Benchmarks\n\n"
    lines = text.split("\n")
    start = next((i for i, l in enumerate(lines) if l.strip() == "## Segmentation"), None)
    if start is None:
        new = text.rstrip("\n") + "\n\n" + section
    else:
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
        new = "\n".join(lines[:start] + section.rstrip("\n").split("\n") + [""] + lines[end:])
    with open(path, "w", encoding="utf-8") as f:
        f.write(new.rstrip("\n") + "\n")
    print("updated", path)


if __name__ == "__main__":
    main()
