"""One-shot predictor in Python: python3 predict_peer.py MODEL IMAGE... -> PATH<TAB>LABEL<TAB>PROB."""
import os
import sys

import torch

from catdog_peer import load_model, preprocess


def main():
    torch.set_num_threads(int(os.environ.get("PEER_THREADS", os.cpu_count())))
    meta, model = load_model(sys.argv[1])
    paths = []
    for arg in sys.argv[2:]:
        if os.path.isdir(arg):
            paths += sorted(os.path.join(arg, n) for n in os.listdir(arg))
        else:
            paths.append(arg)
    size = meta["input_size"]
    with torch.inference_mode():
        for i in range(0, len(paths), 32):
            chunk = paths[i:i + 32]
            p = torch.sigmoid(model(torch.stack([preprocess(q, size) for q in chunk])).view(-1))
            for path, pd in zip(chunk, p.tolist()):
                label = "dog" if pd >= 0.5 else "cat"
                print(f"{path}\t{label}\t{pd if label == 'dog' else 1 - pd:.4f}")


if __name__ == "__main__":
    main()
