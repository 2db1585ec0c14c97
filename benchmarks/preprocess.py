"""Benchmark: whole-word-masking BERT preprocessing, the native path against the Python reference path,
jieba alone and a UER-py-style pipeline, on one core; memory from a 2 MB to a 200 MB corpus; 1 vs 2
processes.

    python benchmarks/preprocess.py [--corpora DIR] [--repeat 4] [--big_mb 200] [--write-readme]

Input: the shared corpora (../shared/data/corpora: CLUECorpusSmall_bert_sampled.txt,
CLUECorpusSmall_sampled.txt, book_review_cls.txt) concatenated into one BERT-format corpus (files
without blank lines get a blank line after every 10 lines so that they form documents), written
`--repeat` times (default 4, 25.7 MB) so that one-time setup (vocabulary, dictionaries) is a small
part of every path's time.

Every measurement runs in a fresh child process (`--child`), pinned to CPU 0 (os.sched_setaffinity),
except the 2-process run, which may use CPUs 0 and 1. MB/s = corpus bytes / CPU seconds of the child
(user + sys, its pool workers included); wall-clock MB/s alongside (the machine is shared, so wall time
is noisy). Peak RSS = the child's resource.getrusage ru_maxrss (its pool workers reported apart).

  python     run_preprocess(implementation="python"): the reference path, all Python (bert processor,
             whole-word masking, static masks, seq_length 128, dup_factor 1) -> dataset file; its
             segmentation is jieba itself (Segmenter(native=False))
  python-cseg  the same Python path with its segmentation done by the C segmenter (for the cost
             split: how much of the Python path is segmentation)
  native     the same run with implementation="native" -> a byte-identical dataset file (checked)
  jieba      jieba.lcut(line) for every line, nothing else
  UER-style  a re-creation (written here, not UER-py's code) of what UER-py's preprocess.py does for
             `--data_processor bert --whole_word_masking`: per line the Python BERT tokenizer, documents
             -> sentence pairs in Python (Google's create_instances_from_document), then per instance
             UER's mask_seq/create_index with whole words: ids -> tokens -> "".join -> jieba.cut -> the
             Python BERT tokenizer per word -> 80/10/10 masks, and one pickle.dump per instance.
"""
import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, REPO)
DEFAULT_DATA = os.path.normpath(os.path.join(REPO, "..", "shared", "data", "corpora"))
VOCAB = os.path.join(REPO, "models", "google_zh_vocab.txt")
FILES = ("CLUECorpusSmall_bert_sampled.txt", "CLUECorpusSmall_sampled.txt", "book_review_cls.txt")
OPTS = dict(data_processor="bert", seq_length=128, dup_factor=1, whole_word_masking=True, dynamic_masking=False,
            seed=7)


def build_corpus(src_dir, out_path, max_mb=None, repeat=1):
    parts = []
    for name in FILES:
        with open(os.path.join(src_dir, name), "rb") as f:
            data = f.read()
        if not data.endswith(b"\n"):
            data += b"\n"
        if b"\n\n" not in data:
            lines = data.split(b"\n")[:-1]
            data = b"".join(b"\n".join(lines[i:i + 10]) + b"\n\n" for i in range(0, len(lines), 10))
        parts.append(data if data.endswith(b"\n\n") else data + b"\n")
    data = b"".join(parts)
    if max_mb:
        cut = data[: int(max_mb * 1e6)]
        data = cut[: cut.rfind(b"\n\n") + 2]
    with open(out_path, "wb") as f:
        for _ in range(repeat):
            f.write(data)
    return len(data) * repeat


def repeat_corpus(src, out_path, mb):
    with open(src, "rb") as f:
        data = f.read()
    n = 0
    with open(out_path, "wb") as f:
        while n < mb * 1e6:
            f.write(data)
            n += len(data)
    return n


# ------------------------------------------------------------------------------ UER-style pipeline
def uer_style(corpus, out_path, seq_length=128, seed=7):
    """A re-creation of UER-py's BERT + whole-word-masking preprocessing (see the module docstring)."""
    import pickle
    import random

    import jieba

    from uer_like.tokenizers import BertTokenizer

    tok = BertTokenizer(VOCAB)
    vocab = tok.vocab
    cls_id, sep_id, mask_id, pad_id = vocab.cls_id, vocab.sep_id, vocab.mask_id, vocab.pad_id
    rnd = random.Random(seed)

    def tokenize_ids(text):
        return vocab.convert_tokens_to_ids(tok.tokenize(text))

    def create_index(src):  # UER-py create_index(..., whole_word_masking=True)
        tokens_index, src_wwm, n = [], [], len(src)
        has_cls, has_sep = src[0] == cls_id, src[-1] == sep_id
        body = src[1 if has_cls else 0: -1 if has_sep else None]
        sentence = "".join(vocab.convert_ids_to_tokens(body)).replace("[UNK]", "").replace("##", "")
        if has_cls:
            src_wwm.append(cls_id)
        for word in jieba.cut(sentence):
            position = len(src_wwm)
            src_wwm += tokenize_ids(word)
            if len(src_wwm) < n:
                tokens_index.append([position, len(src_wwm) - position])
        if has_sep:
            src_wwm.append(sep_id)
        return tokens_index, src_wwm[:n]

    def mask_seq(src):  # UER-py mask_seq with whole_word_masking
        tokens_index, src = create_index(src)
        rnd.shuffle(tokens_index)
        num_to_predict = max(1, int(round(len(src) * 0.15)))
        tgt = []
        for i, mask_len in tokens_index:
            if len(tgt) >= num_to_predict:
                break
            if len(tgt) + mask_len > num_to_predict:
                continue
            for j in range(mask_len):
                tgt.append((i + j, src[i + j]))
                p = rnd.random()
                if p < 0.8:
                    src[i + j] = mask_id
                elif p < 0.9:
                    while True:
                        r = rnd.randint(1, len(vocab) - 1)
                        if r not in (cls_id, sep_id, mask_id, pad_id):
                            break
                    src[i + j] = r
        return src, sorted(tgt)

    def truncate(a, b, max_num):
        while len(a) + len(b) > max_num:
            t = a if len(a) > len(b) else b
            if rnd.random() < 0.5:
                del t[0]
            else:
                t.pop()

    docs, doc = [], []
    with open(corpus, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.strip()
            if not line:
                if doc:
                    docs.append(doc)
                doc = []
                continue
            ids = tokenize_ids(line)
            if ids:
                doc.append(ids)
    if doc:
        docs.append(doc)
    max_num = seq_length - 3
    n_inst = 0
    with open(out_path, "wb") as out:
        for d_idx, document in enumerate(docs):  # UER-py BertDataset.create_ins_from_doc
            target = max_num if rnd.random() >= 0.1 else rnd.randint(2, max_num)
            chunk, length, i = [], 0, 0
            while i < len(document):
                chunk.append(document[i])
                length += len(document[i])
                if i == len(document) - 1 or length >= target:
                    if chunk:
                        a_end = rnd.randint(1, len(chunk) - 1) if len(chunk) >= 2 else 1
                        a = [t for s in chunk[:a_end] for t in s]
                        if len(chunk) == 1 or rnd.random() < 0.5:
                            is_random = 1
                            r = rnd.randint(0, len(docs) - 1)
                            while r == d_idx and len(docs) > 1:
                                r = rnd.randint(0, len(docs) - 1)
                            rdoc = docs[r]
                            b = []
                            for j in range(rnd.randint(0, len(rdoc) - 1), len(rdoc)):
                                b.extend(rdoc[j])
                                if len(b) >= target - len(a):
                                    break
                            i -= len(chunk) - a_end
                        else:
                            is_random = 0
                            b = [t for s in chunk[a_end:] for t in s]
                        truncate(a, b, max_num)
                        if a and b:
                            src = [cls_id] + a + [sep_id] + b + [sep_id]
                            seg_pos = [len(a) + 2, len(src)]
                            src, tgt_mlm = mask_seq(src)
                            pickle.dump((src, tgt_mlm, is_random, seg_pos), out)
                            n_inst += 1
                    chunk, length = [], 0
                i += 1
    return n_inst


# ------------------------------------------------------------------------------ child
def _rss_now_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def child(args):
    cpus = [int(c) for c in args.cpus.split(",")]
    os.sched_setaffinity(0, set(cpus))
    import logging

    logging.disable(logging.WARNING)
    info = {}
    import jieba

    from uer_like.data.preprocess import run_preprocess  # imports (torch...) are not timed

    if args.child == "python-cseg":  # the Python path with the C segmenter (the cost split)
        import uer_like.segmentation as S

        class CSegmenter(S.Segmenter):
            def __init__(self, *a, native=None, **kw):
                super().__init__(*a, native=None, **kw)

        S.Segmenter = CSegmenter
    if args.child in ("jieba", "uer"):
        jieba.setLogLevel(60)
        jieba.initialize()  # jieba's dictionary load is not timed (the uer_like paths include their setup)
    info["rss_before_mb"] = _rss_now_mb()
    t_cpu, t_wall = time.process_time(), time.perf_counter()
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if args.child in ("python", "python-cseg", "native", "native-nowwm"):
        opts = dict(OPTS, whole_word_masking=args.child != "native-nowwm")
        m = run_preprocess(progress=False, corpus_path=args.corpus, vocab_path=VOCAB, dataset_path=args.out,
                           implementation=args.child.split("-")[0], processes_num=args.processes, **opts)
        info["instances"] = m["instances"]
    elif args.child == "jieba":
        n = 0
        with open(args.corpus, encoding="utf-8", errors="replace") as f:
            for line in f:
                n += len(jieba.lcut(line.rstrip("\n")))
        info["words"] = n
    else:
        info["instances"] = uer_style(args.corpus, args.out)
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = time.process_time() - t_cpu + (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    info.update(cpu=cpu, wall=time.perf_counter() - t_wall,
                maxrss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                workers_maxrss_mb=r1.ru_maxrss / 1024)
    print("RESULT " + json.dumps(info))


def measure(kind, corpus, out, processes=1, cpus="0"):
    cmd = [sys.executable, os.path.abspath(__file__), "--child", kind, "--corpus", corpus, "--out", out,
           "--processes", str(processes), "--cpus", cpus]
    p = subprocess.run(["nice"] + cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"{kind} failed:\n{p.stdout[-2000:]}\n{p.stderr[-4000:]}")
    line = [x for x in p.stdout.splitlines() if x.startswith("RESULT ")][-1]
    res = json.loads(line[7:])
    print(f"  {kind:8s} processes={processes}: {res}", flush=True)
    return res


def cpu_model():
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def write_section(path, section):
    text = open(path, encoding="utf-8").read() if os.path.exists(path) else "# Benchmarks\n"
    head = "## Preprocessing"
    if head in text:
        start = text.index(head)
        nxt = text.find("\n## ", start + len(head))
        text = text[:start] + section + ("\n" + text[nxt + 1:] if nxt >= 0 else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpora", default=DEFAULT_DATA)
    ap.add_argument("--max_mb", type=float, default=None, help="cut the concatenated corpus to this size")
    ap.add_argument("--repeat", type=int, default=4, help="write the concatenated corpus this many times")
    ap.add_argument("--small_mb", type=float, default=2.0)
    ap.add_argument("--big_mb", type=float, default=200.0)
    ap.add_argument("--procs_mb", type=float, default=50.0, help="corpus size of the 1 vs 2 processes runs")
    ap.add_argument("--skip", default="", help="comma-separated: uer,python,pycseg,jieba,memory,procs")
    ap.add_argument("--write-readme", action="store_true")
    ap.add_argument("--child", default=None)
    ap.add_argument("--corpus")
    ap.add_argument("--out")
    ap.add_argument("--processes", type=int, default=1)
    ap.add_argument("--cpus", default="0")
    args = ap.parse_args()
    if args.child:
        return child(args)
    skip = set(filter(None, args.skip.split(",")))
    tmp = tempfile.mkdtemp(prefix="uer_like_bench_")
    corpus = os.path.join(tmp, "corpus.txt")
    size = build_corpus(args.corpora, corpus, args.max_mb, args.repeat)
    one = os.path.join(tmp, "one.txt")
    build_corpus(args.corpora, one, args.max_mb)
    mb = size / 1e6
    print(f"corpus: {mb:.2f} MB in {tmp}", flush=True)
    res = {}
    res["native"] = measure("native", corpus, os.path.join(tmp, "native.bin"))
    res["native-nowwm"] = measure("native-nowwm", corpus, os.path.join(tmp, "nowwm.bin"))
    os.remove(os.path.join(tmp, "nowwm.bin"))
    if "python" not in skip:
        res["python"] = measure("python", corpus, os.path.join(tmp, "python.bin"))
        with open(os.path.join(tmp, "native.bin"), "rb") as a, open(os.path.join(tmp, "python.bin"), "rb") as b:
            res["identical"] = a.read() == b.read()
        os.remove(os.path.join(tmp, "python.bin"))
    if "pycseg" not in skip:
        res["python-cseg"] = measure("python-cseg", corpus, os.path.join(tmp, "pyc.bin"))
        with open(os.path.join(tmp, "native.bin"), "rb") as a, open(os.path.join(tmp, "pyc.bin"), "rb") as b:
            res["identical_pyc"] = a.read() == b.read()
        os.remove(os.path.join(tmp, "pyc.bin"))
    # the corpus once (6.4 MB): the native path with its setup (dictionary, vocabulary) a larger share
    res["native-one"] = measure("native", one, os.path.join(tmp, "one.bin"))
    res["native-one"]["mb"] = os.path.getsize(one) / 1e6
    os.remove(os.path.join(tmp, "one.bin"))
    tiny = os.path.join(tmp, "tiny.txt")
    with open(tiny, "w", encoding="utf-8") as f:
        f.write("我们在北京大学学习。\n今天天气很好。\n")
    res["native-setup"] = measure("native", tiny, os.path.join(tmp, "tiny.bin"))
    if "jieba" not in skip:
        res["jieba"] = measure("jieba", corpus, os.devnull)
    if "uer" not in skip:
        res["uer"] = measure("uer", corpus, os.path.join(tmp, "uer.pkl"))
        os.remove(os.path.join(tmp, "uer.pkl"))
    if "memory" not in skip:
        small = os.path.join(tmp, "small.txt")
        build_corpus(args.corpora, small, args.small_mb)
        big = os.path.join(tmp, "big.txt")
        big_size = repeat_corpus(one, big, args.big_mb)
        res["mem_small"] = measure("native", small, os.path.join(tmp, "small.bin"))
        res["mem_small"]["mb"] = os.path.getsize(small) / 1e6
        res["mem_big"] = measure("native", big, os.path.join(tmp, "big.bin"))
        res["mem_big"]["mb"] = big_size / 1e6
        for p in (small, big, os.path.join(tmp, "small.bin"), os.path.join(tmp, "big.bin")):
            os.remove(p)
    if "procs" not in skip:
        mid = os.path.join(tmp, "mid.txt")
        res["p_mb"] = repeat_corpus(one, mid, args.procs_mb) / 1e6
        res["p1"] = measure("native", mid, os.path.join(tmp, "p1.bin"), 1, "0,1")
        res["p2"] = measure("native", mid, os.path.join(tmp, "p2.bin"), 2, "0,1")
        with open(os.path.join(tmp, "p1.bin"), "rb") as a, open(os.path.join(tmp, "p2.bin"), "rb") as b:
            res["p_identical"] = a.read() == b.read()
    for f in os.listdir(tmp):
        os.remove(os.path.join(tmp, f))
    os.rmdir(tmp)

    rows = []
    base = res.get("python")

    def row(name, r):
        mbs = mb / r["cpu"]
        sp = f"{mbs / (mb / base['cpu']):.1f}x" if base else "-"
        rows.append(f"| {name} | {mbs:.2f} | {mb / r['wall']:.2f} | {sp} | {r['maxrss_mb']:.0f} | "
                    f"{r['rss_before_mb']:.0f} |")

    if base:
        row("Python reference path (`--implementation python`: all Python, segmentation by jieba)", base)
    if "python-cseg" in res:
        row("Python path with the C segmenter (for the cost split; not a user-facing mode)", res["python-cseg"])
    row("native path (`--implementation native`)", res["native"])
    row("native path without whole-word masking (no segmentation; for the cost split)", res["native-nowwm"])
    if "jieba" in res:
        row("jieba.lcut per line, alone", res["jieba"])
    if "uer" in res:
        row("UER-style pipeline (re-creation, see benchmarks/preprocess.py)", res["uer"])
    cmd = "python benchmarks/preprocess.py" + (f" --max_mb {args.max_mb:g}" if args.max_mb else "") + \
        (f" --repeat {args.repeat}" if args.repeat != 4 else "") + \
        (f" --big_mb {args.big_mb:g}" if args.big_mb != 200 else "") + " --write-readme"
    lines = [
        "## Preprocessing", "",
        "Whole-word-masking BERT preprocessing (`preprocess.py --data_processor bert --whole_word_masking`,",
        "static masks, seq_length 128): the native path (`uer_like._native.preprocess_chunk`: jieba-exact",
        "segmentation + BERT tokenizer + instances + masks in C) against the Python reference path, jieba",
        "alone, and a UER-py-style pipeline (a re-creation written in the benchmark: Python BERT tokenizer",
        "per line, pairs built in Python, then per instance ids -> text -> jieba.cut -> tokenizer per word",
        "-> masks, one pickle.dump per instance).", "",
        f"Command: `{cmd}`  ",
        f"Machine: {cpu_model()}, {os.cpu_count()} cores (each measurement in a fresh child process pinned to",
        f"1 core), Python {platform.python_version()}.  ",
        f"Input: the 3 shared corpora concatenated into one BERT-format corpus ({mb / args.repeat:.2f} MB), written "
        f"{args.repeat} times ({mb:.1f} MB).",
        "MB/s = input bytes / CPU seconds of the child (wall-clock alongside; the machine is shared with other",
        "jobs). Timed: the run itself (interpreter start and imports excluded; the uer_like paths include",
        "loading the vocabulary and their segmenter's dictionary; for jieba alone and the UER-style pipeline",
        "jieba's dictionary is loaded before timing). Peak RSS = the child's ru_maxrss; RSS before = after",
        "imports, before the run (torch is imported by uer_like).", "",
        "| path | MB/s (CPU) | MB/s (wall) | vs Python path | peak RSS (MB) | RSS before (MB) |",
        "|---|---:|---:|---:|---:|---:|",
        *rows, ""]
    if "identical" in res:
        same = res["identical"] and res.get("identical_pyc", True)
        lines.append(f"Native and Python dataset files byte-identical: {'yes' if same else 'NO'} "
                     f"({res['native'].get('instances')} instances).")
    if "uer" in res:
        lines.append(f"Native vs the UER-style pipeline: {(mb / res['native']['cpu']) / (mb / res['uer']['cpu']):.0f}x "
                     "(CPU).")
    def vs(r):
        out = f"{r['mb'] / r['cpu']:.1f} MB/s CPU"
        if base:
            out += f" = {(r['mb'] / r['cpu']) / (mb / base['cpu']):.0f}x the Python reference path"
        if "python-cseg" in res:
            out += f", {(r['mb'] / r['cpu']) / (mb / res['python-cseg']['cpu']):.0f}x the Python path with the C segmenter"
        return out

    o1 = res["native-one"]
    lines.append(f"Native path on the corpus once ({o1['mb']:.1f} MB; {res['native-setup']['cpu']:.2f} s of its "
                 f"{o1['cpu']:.2f} s are setup, the time of a one-line corpus): {vs(o1)}.")
    if "mem_big" in res:
        lines.append(f"Native path on the {res['mem_big']['mb']:.0f} MB corpus below: {vs(res['mem_big'])}.")
        s, b = res["mem_small"], res["mem_big"]
        lines += ["", f"Memory (native path, 1 MB chunks): {s['mb']:.1f} MB corpus -> peak RSS {s['maxrss_mb']:.0f} MB; "
                  f"{b['mb']:.0f} MB corpus (the corpus repeated) -> peak RSS {b['maxrss_mb']:.0f} MB "
                  f"(RSS after imports: {s['rss_before_mb']:.0f} / {b['rss_before_mb']:.0f} MB) "
                  f"({b['mb'] / b['cpu']:.2f} MB/s CPU, {b['mb'] / b['wall']:.2f} MB/s wall)."]
    if "p1" in res:
        p1, p2 = res["p1"], res["p2"]
        pm = res["p_mb"]
        lines += ["", f"Processes (native path, {pm:.0f} MB corpus (repeated), 2 CPUs allowed, wall clock; the "
                  f"second core is shared with other jobs): --processes_num 1: "
                  f"{pm / p1['wall']:.2f} MB/s; --processes_num 2: {pm / p2['wall']:.2f} MB/s "
                  f"({p1['wall'] / p2['wall']:.2f}x; workers' peak RSS {p2['workers_maxrss_mb']:.0f} MB each; "
                  f"outputs identical: {'yes' if res['p_identical'] else 'NO'})."]
    section = "\n".join(lines) + "\n"
    print(section)
    if args.write_readme:
        write_section(os.path.join(HERE, "README.md"), section)


if __name__ == "__main__":
    main()
