"""Benchmark of `mouthpiece tts`: speed (RTF), speaker similarity base vs adapted,
intelligibility (pocketsphinx WER) base vs adapted, and the G2P dictionary check.

    .venv/bin/python bench/bench_tts.py [--quick] [--voices-only]

Reference speakers are produced offline: flite (kal, awb, rms, slt), festival (slt HTS),
espeak-ng (en-us+f3), and real human speech shipped by alsa-utils (/usr/share/sounds/alsa,
one speaker, 8 short clips). Each speaker gives two clips of different words: the voice is
adapted to one (the reference) and similarity is scored against the other (held out). The
base voice is piper's en_US-joe-medium, unadapted, with the same seed.
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

from mouthpiece.media import load_audio, resample  # noqa: E402
from mouthpiece.speech import decoders  # noqa: E402
from mouthpiece.speech.recognize import decode_words  # noqa: E402
from mouthpiece.speech.reference_tts import write_wav  # noqa: E402
from mouthpiece.speech.tts import synthesize  # noqa: E402
from mouthpiece.types import Audio  # noqa: E402

REFERENCE_TEXT = ("The rainbow is a division of white light into many beautiful colors. "
                  "These take the shape of a long round arch, with its path high above.")
# Similarity is measured against a DIFFERENT utterance of the same speaker than the clip the
# voice is adapted to (the warp search optimises against the adaptation clip, so scoring
# against that same clip would flatter it).
HELD_OUT_TEXT = ("Please call Stella. Ask her to bring these things with her from the store: "
                 "six spoons of fresh snow peas and five thick slabs of blue cheese.")
SENTENCES = [  # Harvard sentences (lists 1–2), in neither the reference nor the held-out clips
    "The birch canoe slid on the smooth planks.",
    "Glue the sheet to the dark blue background.",
    "It's easy to tell the depth of a well.",
    "These days a chicken leg is a rare dish.",
    "Rice is often served in round bowls.",
    "The juice of lemons makes fine punch.",
]
ALSA = Path("/usr/share/sounds/alsa")


def _speak(folder: Path, name: str, text: str, tag: str) -> Path:
    path = folder / f"{name}_{tag}.wav"
    engine, _, voice = name.partition("-")
    if engine == "flite":
        subprocess.run(["flite", "-voice", voice, "-t", text, "-o", str(path)], check=True)
    elif engine == "festival":
        subprocess.run(["text2wave", "-o", str(path)], input=text, text=True, check=True)
    else:
        subprocess.run(["espeak-ng", "-v", "en-us+f3", "-w", str(path), text], check=True)
    return path


def _concatenate(folder: Path, name: str, clips: list[Path]) -> Path:
    parts = []
    for clip in clips:
        parts += [load_audio(clip).samples, np.zeros(4000, np.float32)]  # 0.25 s pauses
    path = folder / name
    write_wav(path, np.concatenate(parts), 16_000)
    return path


def make_references(folder: Path) -> dict[str, tuple[Path, Path]]:
    """{speaker: (adaptation clip, held-out clip of other words by the same speaker)}."""
    refs = {}
    for name in ("flite-kal", "flite-awb", "flite-rms", "flite-slt", "festival-slt", "espeak-f3"):
        refs[name] = (_speak(folder, name, REFERENCE_TEXT, "ref"),
                      _speak(folder, name, HELD_OUT_TEXT, "heldout"))
    clips = sorted(p for p in ALSA.glob("*.wav") if p.stem != "Noise") if ALSA.is_dir() else []
    if len(clips) >= 8:  # one real speaker: alternate clips → reference / held-out
        refs["real-alsa"] = (_concatenate(folder, "alsa_ref.wav", clips[0::2]),
                             _concatenate(folder, "alsa_heldout.wav", clips[1::2]))
    return refs


def recognize(samples: np.ndarray, rate: int) -> str:
    """pocketsphinx words (shipped LM), front end reset per utterance so order cannot matter."""
    audio = Audio(resample(samples, rate, 16_000), 16_000)
    return " ".join(decode_words(decoders.padded_pcm(audio)))


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


def bench_voices(refs: dict[str, tuple[Path, Path]], sentences: list[str]) -> dict:
    """Per speaker: similarity of base and adapted speech to the held-out clip (the figure)
    and to the adaptation clip (for comparison), and pocketsphinx WER of base and adapted."""
    from mouthpiece.speech.voice import analyze_reference, cosine, embed

    rows, cold, warm = [], [], []
    base = {}  # sentence → (16 kHz samples, WER): the unadapted engine voice, same seed
    for k, sentence in enumerate(sentences):
        out = synthesize(sentence, seed=k)
        audio = resample(out.samples, out.sample_rate, 16_000)
        base[sentence] = (audio, wer(sentence, recognize(out.samples, out.sample_rate)))
    for name, (ref, held_out) in refs.items():
        held = analyze_reference(held_out, "held-out clip").embedding
        sims_b, sims_a, in_b, in_a, wer_b, wer_a = [], [], [], [], [], []
        for k, sentence in enumerate(sentences):
            adapted = synthesize(sentence, voice=ref, seed=k)
            (cold if k == 0 else warm).append(adapted.report["rtf"])
            base_audio, base_wer = base[sentence]
            sims_b.append(cosine(embed(base_audio), held))
            sims_a.append(cosine(embed(resample(adapted.samples, adapted.sample_rate, 16_000)),
                                 held))
            in_b.append(adapted.report["similarity"]["base"])
            in_a.append(adapted.report["similarity"]["adapted"])
            wer_b.append(base_wer)
            wer_a.append(wer(sentence, recognize(adapted.samples, adapted.sample_rate)))
        row = {"reference": name,
               "base": _mean(sims_b), "adapted": _mean(sims_a),
               "gain": round(_mean(sims_a) - _mean(sims_b), 3),
               "base_to_adaptation_clip": _mean(in_b), "adapted_to_adaptation_clip": _mean(in_a),
               "wer_base": round(100 * _mean(wer_b), 1), "wer_adapted": round(100 * _mean(wer_a), 1),
               "conversion": adapted.report["conversion"],
               "speaking_rate": adapted.report["speaking_rate"]}
        rows.append(row)
        print(f"  {name:13s} held-out similarity {row['base']:.3f} → {row['adapted']:.3f} "
              f"({row['gain']:+.3f}; to the adaptation clip {row['base_to_adaptation_clip']:.3f} → "
              f"{row['adapted_to_adaptation_clip']:.3f})  WER {row['wer_base']:.1f} → "
              f"{row['wer_adapted']:.1f} %  (warp {row['conversion']['warp']}, "
              f"speaking rate ×{row['speaking_rate']})", flush=True)
    mean = lambda key: round(float(np.mean([r[key] for r in rows])), 3)  # noqa: E731
    return {
        "speakers": rows,
        "similarity_base_mean": mean("base"),
        "similarity_adapted_mean": mean("adapted"),
        "similarity_gain_mean": round(mean("adapted") - mean("base"), 3),
        "similarity_to_adaptation_clip": [mean("base_to_adaptation_clip"),
                                          mean("adapted_to_adaptation_clip")],
        "wer_base": round(mean("wer_base"), 1),
        "wer_adapted": round(mean("wer_adapted"), 1),
        "wer_rise_points": round(mean("wer_adapted") - mean("wer_base"), 1),
        "utterances": len(rows) * len(sentences),
        "rtf_with_voice_first_call": round(statistics.median(cold), 3),
        "rtf_with_voice_cached_profile": round(statistics.median(warm), 3) if warm else None,
    }


def _mean(values: list[float]) -> float:
    return round(float(np.mean(values)), 3)


def bench_g2p() -> dict:
    dictionary = {"重庆": "chong2 qing4", "HTTP": "EY1 CH T IY1 T IY1 P IY1", "AI": "ei4 ai4"}
    zh = synthesize("重庆银行的行长说HTTP和AI很好。", lang="zh", g2p_dict=dictionary)
    en = synthesize("The HTTP server runs AI models.", g2p_dict=dictionary)
    return {"zh": zh.phonemes, "en": en.phonemes}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer sentences and repeats")
    parser.add_argument("--voices-only", action="store_true", help="skip the RTF and G2P parts")
    args = parser.parse_args()
    for tool in ("flite", "text2wave", "espeak-ng"):
        if shutil.which(tool) is None:
            print(f"missing {tool}", file=sys.stderr)
            return 1
    rtf = g2p = None
    if not args.voices_only:
        print("RTF (compute s per s of speech, median of repeats):", flush=True)
        rtf = bench_rtf(1 if args.quick else 3)
        print(" ", json.dumps(rtf))
    with tempfile.TemporaryDirectory() as tmp:
        refs = make_references(Path(tmp))
        print(f"voice adaptation over {len(refs)} reference speakers:", flush=True)
        voices = bench_voices(refs, SENTENCES[:2] if args.quick else SENTENCES)
    print(f"  mean held-out similarity base {voices['similarity_base_mean']:.3f} → adapted "
          f"{voices['similarity_adapted_mean']:.3f} (gain {voices['similarity_gain_mean']:+.3f}); "
          f"to the adaptation clip {voices['similarity_to_adaptation_clip'][0]:.3f} → "
          f"{voices['similarity_to_adaptation_clip'][1]:.3f}")
    print(f"  pocketsphinx WER over {voices['utterances']} utterances: base {voices['wer_base']:.1f} % → "
          f"adapted {voices['wer_adapted']:.1f} % ({voices['wer_rise_points']:+.1f} points)")
    print(f"  RTF with --voice: first call {voices['rtf_with_voice_first_call']}, "
          f"later calls {voices['rtf_with_voice_cached_profile']}")
    if not args.voices_only:
        g2p = bench_g2p()
        print("G2P dictionary check:")
        print("  zh:", g2p["zh"])
        print("  en:", g2p["en"])
    print(json.dumps({"rtf": rtf, "voices": voices, "g2p": g2p}, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
