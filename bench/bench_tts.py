"""Benchmark of `mouthpiece tts`: speed (RTF), speaker similarity base vs adapted,
intelligibility (pocketsphinx WER) base vs adapted, and the G2P dictionary check.

    .venv/bin/python bench/bench_tts.py [--quick]

Reference speakers are produced offline: flite (kal, awb, rms, slt), festival (slt HTS),
espeak-ng (en-us+f3), and real human speech shipped by alsa-utils (/usr/share/sounds/alsa,
one speaker, 8 short clips concatenated). The base voice is piper's en_US-joe-medium.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mouthpiece.media import load_audio  # noqa: E402
from mouthpiece.speech import decoders  # noqa: E402
from mouthpiece.speech.reference_tts import write_wav  # noqa: E402
from mouthpiece.speech.tts import synthesize  # noqa: E402
from mouthpiece.speech.tts.synthesis import _resample  # noqa: E402
from mouthpiece.types import Audio  # noqa: E402

REFERENCE_TEXT = ("The rainbow is a division of white light into many beautiful colors. "
                  "These take the shape of a long round arch, with its path high above.")
SENTENCES = [  # Harvard sentences (lists 1–2), none of them in the reference clips
    "The birch canoe slid on the smooth planks.",
    "Glue the sheet to the dark blue background.",
    "It's easy to tell the depth of a well.",
    "These days a chicken leg is a rare dish.",
    "Rice is often served in round bowls.",
    "The juice of lemons makes fine punch.",
]
ALSA = Path("/usr/share/sounds/alsa")


def make_references(folder: Path) -> dict[str, Path]:
    refs = {}
    for voice in ("kal", "awb", "rms", "slt"):
        path = folder / f"flite_{voice}.wav"
        subprocess.run(["flite", "-voice", voice, "-t", REFERENCE_TEXT, "-o", str(path)], check=True)
        refs[f"flite-{voice}"] = path
    path = folder / "festival_slt.wav"
    subprocess.run(["text2wave", "-o", str(path)], input=REFERENCE_TEXT, text=True, check=True)
    refs["festival-slt"] = path
    path = folder / "espeak_f3.wav"
    subprocess.run(["espeak-ng", "-v", "en-us+f3", "-w", str(path), REFERENCE_TEXT], check=True)
    refs["espeak-f3"] = path
    clips = sorted(p for p in ALSA.glob("*.wav") if p.stem != "Noise") if ALSA.is_dir() else []
    if clips:
        parts = []
        for clip in clips:
            parts += [load_audio(clip).samples, np.zeros(4000, np.float32)]
        path = folder / "alsa_real.wav"
        write_wav(path, np.concatenate(parts), 16_000)
        refs["real-alsa"] = path
    return refs


def recognize(samples: np.ndarray, rate: int) -> str:
    audio = Audio(_resample(samples, rate, 16_000), 16_000)
    locked = decoders.word_recognizer()
    with locked.lock:
        decoder = locked.decoder
        decoder.start_utt()
        decoder.process_raw(decoders.padded_pcm(audio), full_utt=True)
        decoder.end_utt()
        return decoder.hyp().hypstr if decoder.hyp() else ""


def words(text: str) -> list[str]:
    return [w for w in re.sub(r"[^a-z' ]", " ", text.lower()).split() if w]


def wer(reference: str, hypothesis: str) -> float:
    ref, hyp = words(reference), words(hypothesis)
    d = np.arange(len(hyp) + 1)
    for i, r in enumerate(ref, 1):
        prev, d[0] = d.copy(), i
        for j, h in enumerate(hyp, 1):
            d[j] = min(prev[j] + 1, d[j - 1] + 1, prev[j - 1] + (r != h))
    return d[len(hyp)] / max(len(ref), 1)


def bench_rtf(repeats: int) -> dict:
    synthesize("Warm up the engine.")  # model load is a one-off cost
    results = {}
    for label, kwargs in (("piper", {}), ("espeak", {"engine": "espeak"})):
        ratios = []
        for _ in range(repeats):
            for sentence in SENTENCES[:3]:
                s = synthesize(sentence, **kwargs)
                ratios.append(s.report["rtf"])
        results[label] = {"median": round(statistics.median(ratios), 3),
                          "min": round(min(ratios), 3), "max": round(max(ratios), 3)}
    return results


def bench_voices(refs: dict[str, Path], sentences: list[str]) -> dict:
    from mouthpiece.speech.voice import convert

    rows, base_wer, adapted_wer, kept_rate_wer, cold, warm = [], [], [], [], [], []
    base_cache = {}
    for name, ref in refs.items():
        sims_b, sims_a = [], []
        for k, sentence in enumerate(sentences):
            adapted = synthesize(sentence, voice=ref, seed=k)
            (cold if k == 0 else warm).append(adapted.report["rtf"])
            sims_b.append(adapted.report["similarity"]["base"])
            sims_a.append(adapted.report["similarity"]["adapted"])
            if sentence not in base_cache:
                base = synthesize(sentence, seed=k)
                base_cache[sentence] = wer(sentence, recognize(base.samples, base.sample_rate))
            base_wer.append(base_cache[sentence])
            adapted_wer.append(wer(sentence, recognize(adapted.samples, adapted.sample_rate)))
            strength, convert.RATE_TRANSFER_STRENGTH = convert.RATE_TRANSFER_STRENGTH, 0.0
            try:  # the same conversion without speaking-rate transfer
                kept = synthesize(sentence, voice=ref, seed=k)
            finally:
                convert.RATE_TRANSFER_STRENGTH = strength
            kept_rate_wer.append(wer(sentence, recognize(kept.samples, kept.sample_rate)))
        rows.append({"reference": name, "base": round(float(np.mean(sims_b)), 3),
                     "adapted": round(float(np.mean(sims_a)), 3),
                     "warp": adapted.report["conversion"]["warp"],
                     "speaking_rate": adapted.report["speaking_rate"]})
        print(f"  {name:14s} similarity {rows[-1]['base']:.3f} → {rows[-1]['adapted']:.3f}"
              f"  (warp {rows[-1]['warp']}, speaking rate ×{rows[-1]['speaking_rate']})", flush=True)
    return {
        "speakers": rows,
        "similarity_base_mean": round(float(np.mean([r["base"] for r in rows])), 3),
        "similarity_adapted_mean": round(float(np.mean([r["adapted"] for r in rows])), 3),
        "wer_base": round(float(np.mean(base_wer)) * 100, 1),
        "wer_adapted": round(float(np.mean(adapted_wer)) * 100, 1),
        "wer_adapted_rate_kept": round(float(np.mean(kept_rate_wer)) * 100, 1),
        "utterances": len(adapted_wer),
        "rtf_with_voice_first_call": round(statistics.median(cold), 3),
        "rtf_with_voice_cached_profile": round(statistics.median(warm), 3) if warm else None,
    }


def bench_g2p() -> dict:
    dictionary = {"重庆": "chong2 qing4", "HTTP": "EY1 CH T IY1 T IY1 P IY1", "AI": "ei4 ai4"}
    zh = synthesize("重庆银行的行长说HTTP和AI很好。", lang="zh", g2p_dict=dictionary)
    en = synthesize("The HTTP server runs AI models.", g2p_dict=dictionary)
    return {"zh": zh.phonemes, "en": en.phonemes}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer sentences and repeats")
    args = parser.parse_args()
    for tool in ("flite", "text2wave", "espeak-ng"):
        if shutil.which(tool) is None:
            print(f"missing {tool}", file=sys.stderr)
            return 1
    print("RTF (compute s per s of speech, median of repeats):", flush=True)
    rtf = bench_rtf(1 if args.quick else 3)
    print(" ", json.dumps(rtf))
    with tempfile.TemporaryDirectory() as tmp:
        refs = make_references(Path(tmp))
        print(f"voice adaptation over {len(refs)} reference speakers:", flush=True)
        voices = bench_voices(refs, SENTENCES[:2] if args.quick else SENTENCES)
    print(f"  mean similarity base {voices['similarity_base_mean']:.3f} → adapted "
          f"{voices['similarity_adapted_mean']:.3f} (gain "
          f"{voices['similarity_adapted_mean'] - voices['similarity_base_mean']:+.3f})")
    print(f"  pocketsphinx WER over {voices['utterances']} utterances: base {voices['wer_base']:.1f} % → "
          f"adapted {voices['wer_adapted']:.1f} % (without rate transfer "
          f"{voices['wer_adapted_rate_kept']:.1f} %)")
    print(f"  RTF with --voice: first call {voices['rtf_with_voice_first_call']}, "
          f"later calls {voices['rtf_with_voice_cached_profile']}")
    g2p = bench_g2p()
    print("G2P dictionary check:")
    print("  zh:", g2p["zh"])
    print("  en:", g2p["en"])
    print(json.dumps({"rtf": rtf, "voices": voices, "g2p": g2p}, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
