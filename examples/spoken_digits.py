"""Connected spoken digits: `rnnkit train --task transcribe` on strings of 2 to 5 digits.

Two sources of speech, both turned into `audio.wav<TAB>transcript` files with transcripts
written "3 5 1", so the word error rate is the digit error rate:

  --fsdd DIR   real recordings: the Free Spoken Digit Dataset's recordings/ folder (6 speakers,
               50 recordings of every digit each, 8 kHz; github.com/Jakobovski/free-spoken-
               digit-dataset, not shipped). A string is one speaker's single-digit recordings,
               trimmed of silence and joined with pauses of 50-250 ms. Held out: strings made
               only of recordings 0-4 of every digit and speaker (the dataset's own test split),
               so no held-out recording was heard in training; or, with --unseen-speaker,
               every recording of one speaker, whose voice was never heard in training.
  --espeak     synthesized: espeak-ng (scripts/system-packages.sh installs it) speaks whole
               strings in several English voices, speeds and pitches; one voice is held out.

    python examples/spoken_digits.py --fsdd free-spoken-digit-dataset/recordings --max-time 300

It writes the data under --work, trains with only --data, --val-data and --max-time, and
prints `rnnkit evaluate`'s figures on the held-out strings, greedy and with --beam-size 8.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np

DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
VOICES = ["en-us", "en-gb", "en-gb-scotland", "en-029", "en-gb-x-rp", "en-gb-x-gbclan"]
HELD_OUT_VOICE = "en-gb-x-gbcwmd"
RATE = 8000


def write_wav(path: Path, samples: np.ndarray, rate: int) -> None:
    data = (np.clip(samples, -1, 1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(rate)
        handle.writeframes(data.tobytes())


def read_wav(path: Path) -> np.ndarray:
    with wave.open(str(path), "rb") as handle:
        raw = handle.readframes(handle.getnframes())
    return np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768


def trim(samples: np.ndarray, frame: int = 160, floor_db: float = -35.0) -> np.ndarray:
    """Cut the leading and trailing frames 35 dB below the loudest."""
    n = len(samples) // frame
    if n == 0:
        return samples
    energy = (samples[: n * frame].reshape(n, frame) ** 2).mean(1) + 1e-12
    loud = np.flatnonzero(10 * np.log10(energy / energy.max()) > floor_db)
    return samples[loud[0] * frame : (loud[-1] + 1) * frame]


def digit_strings(rng: np.random.Generator, count: int) -> list[list[int]]:
    return [list(rng.integers(0, 10, int(rng.integers(2, 6)))) for _ in range(count)]


def fsdd(
    folder: Path, out: Path, rng, train_count: int, val_count: int, unseen: str | None
) -> dict[str, list]:
    recordings: dict[tuple[str, int], list[tuple[int, Path]]] = {}
    for path in sorted(folder.glob("*.wav")):
        digit, speaker, index = path.stem.split("_")
        recordings.setdefault((speaker, int(digit)), []).append((int(index), path))
    if not recordings:
        sys.exit(f"{folder} holds no FSDD recordings (digit_speaker_index.wav)")
    speakers = sorted({s for s, _ in recordings})
    if unseen is not None and unseen not in speakers:
        sys.exit(f"--unseen-speaker {unseen}: FSDD's speakers are {', '.join(speakers)}")
    cache: dict[Path, np.ndarray] = {}
    rows: dict[str, list] = {"train": [], "val": []}
    for part, count in (("train", train_count), ("val", val_count)):
        for n, digits in enumerate(digit_strings(rng, count)):
            if unseen is None:  # recordings 0-4 held out, 5-49 trained on
                speaker = speakers[int(rng.integers(len(speakers)))]
                indices = range(5) if part == "val" else range(5, 50)
            else:  # every recording of one speaker held out, the others' all trained on
                others = [s for s in speakers if s != unseen]
                speaker = unseen if part == "val" else others[int(rng.integers(len(others)))]
                indices = range(50)
            pieces = [np.zeros(int(rng.uniform(0.05, 0.2) * RATE), np.float32)]
            for digit in digits:
                pool = [p for i, p in recordings[(speaker, digit)] if i in indices]
                path = pool[int(rng.integers(len(pool)))]
                if path not in cache:
                    cache[path] = trim(read_wav(path))
                pieces += [cache[path], np.zeros(int(rng.uniform(0.05, 0.25) * RATE), np.float32)]
            audio = np.concatenate(pieces) + rng.normal(0, 0.002, sum(map(len, pieces)))
            name = f"fsdd-{part}-{n}.wav"
            write_wav(out / name, audio, RATE)
            rows[part].append((name, " ".join(map(str, digits))))
    return rows


def espeak(out: Path, rng, train_count: int, val_count: int) -> dict[str, list]:
    rows: dict[str, list] = {"train": [], "val": []}
    for part, count in (("train", train_count), ("val", val_count)):
        for n, digits in enumerate(digit_strings(rng, count)):
            voice = HELD_OUT_VOICE if part == "val" else VOICES[n % len(VOICES)]
            name = f"espeak-{part}-{n}.wav"
            command = [
                "espeak-ng", "-v", voice, "-s", str(int(rng.integers(120, 200))),
                "-p", str(int(rng.integers(30, 70))), "-g", str(int(rng.integers(0, 8))),
                "-w", str(out / name), " ".join(DIGITS[d] for d in digits),
            ]  # fmt: skip
            subprocess.run(command, check=True)
            rows[part].append((name, " ".join(map(str, digits))))
    return rows


def rnnkit(*args: str) -> str:
    command = [sys.executable, "-m", "rnnkit", *args]
    return subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True).stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fsdd", type=Path, help="FSDD's recordings/ folder (real speech)")
    parser.add_argument("--espeak", action="store_true", help="add espeak-ng's speech")
    parser.add_argument(
        "--unseen-speaker",
        metavar="NAME",
        help="hold out every FSDD recording of this speaker instead (speaker-independent test)",
    )
    parser.add_argument("--work", type=Path, default=Path("runs/spoken-digits"))
    parser.add_argument("--max-time", type=float, default=300.0, help="seconds of training")
    parser.add_argument("--train-strings", type=int, default=3000)
    parser.add_argument("--val-strings", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train-flags", default="", help="more flags for rnnkit train")
    args = parser.parse_args()
    if args.fsdd is None and not args.espeak:
        parser.error("give --fsdd DIR, --espeak, or both")

    audio = args.work / "audio"
    audio.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    rows: dict[str, list] = {"train": [], "val": []}
    sources = []
    if args.fsdd is not None:
        counts = (args.train_strings, args.val_strings)
        sources.append(fsdd(args.fsdd, audio, rng, *counts, args.unseen_speaker))
    if args.espeak:
        sources.append(espeak(audio, rng, args.train_strings, args.val_strings))
    for source in sources:
        for part in rows:
            rows[part] += source[part]
    for part, items in rows.items():
        (audio / f"{part}.tsv").write_text("".join(f"{a}\t{t}\n" for a, t in items))
    print(f"{len(rows['train'])} training and {len(rows['val'])} held-out strings in {audio}")

    run = args.work / "run"
    rnnkit(
        "train", "--task", "transcribe", "--data", str(audio / "train.tsv"),
        "--val-data", str(audio / "val.tsv"), "--out", str(run), "--max-time",
        str(args.max_time), "--seed", str(args.seed), "--force", *args.train_flags.split(),
    )  # fmt: skip
    for beam in (1, 8):
        figures = json.loads(
            rnnkit(
                "evaluate", "--checkpoint", str(run), "--data", str(audio / "val.tsv"),
                "--beam-size", str(beam),
            )
        )  # fmt: skip
        print(
            f"beam {beam}: digit error rate (wer) {figures['wer']:.4f}, cer {figures['cer']:.4f}, "
            f"strings exactly right {figures['exact_match']:.4f} of {figures['examples']}"
        )


if __name__ == "__main__":
    main()
