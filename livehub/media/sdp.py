"""Checking SDP offers and trickle fragments before aiortc sees them, and choosing codecs.

Everything a client sends is validated here with clear errors: size (64 KiB),
encoding, that aiortc can parse it, that each media section carries what a
WebRTC peer needs (mid, ICE credentials, a DTLS fingerprint, rtcp-mux), and
that there is a codec livehub can forward. aiortc's own parser checks with
``assert`` (gone under ``python -O``) and raises assorted exceptions, so the
explicit checks below are the ones that count.

Codecs: ingest takes H.264 (constrained baseline, then baseline, packetization
mode 1) before VP8, and Opus for audio. aiortc picks codecs inside
``setRemoteDescription``, so the preferences built here must be set on the
transceivers before it is called. Playback offers the publisher's codec only.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Literal

from aiortc import RTCRtpSender
from aiortc.rtcpeerconnection import is_codec_compatible
from aiortc.rtcrtpparameters import RTCRtpCodecCapability, RTCRtpCodecParameters
from aiortc.sdp import MediaDescription, SessionDescription

from livehub.errors import ProtocolError
from livehub.media.relay import Kind

MAX_SDP_BYTES = 64 * 1024
MAX_MEDIA_SECTIONS = 2
Role = Literal["publish", "play"]

# (mime type, H.264 profile-level-id) in order of preference at ingest
VIDEO_PREFERENCE: tuple[tuple[str, str | None], ...] = (
    ("video/H264", "42e01f"),
    ("video/H264", "42001f"),
    ("video/VP8", None),
)
AUDIO_PREFERENCE: tuple[tuple[str, str | None], ...] = (("audio/opus", None),)
SENDING_DIRECTIONS = {"publish": ("sendonly", "sendrecv"), "play": ("recvonly", "sendrecv")}


class BadSdp(ProtocolError):
    def __init__(self, message: str) -> None:
        super().__init__("bad_sdp", message)


class NoCodec(ProtocolError):
    def __init__(self, message: str) -> None:
        super().__init__("no_codec", message)


@dataclass(frozen=True)
class MediaSection:
    kind: Kind
    mid: str
    direction: str
    codecs: tuple[RTCRtpCodecParameters, ...]

    def offered(self) -> str:
        names = sorted({c.mimeType.split("/")[-1] for c in self.codecs if c.name != "rtx"})
        return ", ".join(names) or "none"


@dataclass(frozen=True)
class Offer:
    sdp: str
    sections: tuple[MediaSection, ...]
    ice_ufrag: str
    ice_pwd: str
    bundle: tuple[str, ...] = ()

    @property
    def kinds(self) -> tuple[Kind, ...]:
        return tuple(s.kind for s in self.sections)


@dataclass(frozen=True)
class CodecChoice:
    """What to offer for one kind: the codec used, and the preferences to set before SRD."""

    kind: Kind
    mime: str
    preferences: tuple[RTCRtpCodecCapability, ...]


def decode_body(raw: bytes, what: str = "SDP", code: str = "bad_sdp") -> str:
    if len(raw) > MAX_SDP_BYTES:
        raise ProtocolError(code, f"The {what} is larger than {MAX_SDP_BYTES // 1024} KiB.")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolError(code, f"The {what} is not UTF-8 text.") from None
    if "\x00" in text:
        raise ProtocolError(code, f"The {what} contains a NUL character.")
    return text


def parse_offer(raw: bytes, role: Role) -> Offer:
    """Parse and check an offer; raises ``BadSdp`` with what is wrong."""
    text = decode_body(raw)
    if not text.strip():
        raise BadSdp("The body is empty; POST an SDP offer.")
    if not text.startswith("v=0"):
        raise BadSdp("An SDP offer starts with 'v=0'.")
    try:
        description = SessionDescription.parse(text)
    except Exception as exc:  # aiortc's parser raises whatever the input provokes
        raise BadSdp(f"The SDP cannot be parsed ({type(exc).__name__}).") from None
    sections = tuple(_section(m, role) for m in description.media)
    if not sections:
        raise BadSdp("The offer has no audio or video section.")
    kinds = [s.kind for s in sections]
    if len(set(kinds)) != len(kinds) or len(kinds) > MAX_MEDIA_SECTIONS:
        raise BadSdp("At most one audio and one video section are supported.")
    if len({s.mid for s in sections}) != len(sections):
        raise BadSdp("Each media section needs its own a=mid.")
    first = description.media[0].ice
    assert first is not None and first.usernameFragment and first.password  # checked above
    bundle = next((g.items for g in description.group if g.semantic == "BUNDLE"), [])
    return Offer(
        text, sections, first.usernameFragment, first.password, tuple(str(m) for m in bundle)
    )


def _section(media: MediaDescription, role: Role) -> MediaSection:
    if media.kind not in ("audio", "video"):
        raise BadSdp(f"Media of kind {media.kind!r} is not supported (audio and video only).")
    kind: Kind = "audio" if media.kind == "audio" else "video"
    mid = media.rtp.muxId
    if not mid or len(mid) > 32:
        raise BadSdp(f"The {kind} section has no usable a=mid.")
    if media.ice is None or not media.ice.usernameFragment or not media.ice.password:
        raise BadSdp(f"The {kind} section has no ICE credentials (a=ice-ufrag, a=ice-pwd).")
    if media.dtls is None or not media.dtls.fingerprints:
        raise BadSdp(f"The {kind} section has no DTLS fingerprint and a=setup.")
    if not media.rtcp_mux:
        raise BadSdp(f"The {kind} section does not use a=rtcp-mux.")
    direction = media.direction or "sendrecv"
    if direction not in SENDING_DIRECTIONS[role]:
        wanted = " or ".join(SENDING_DIRECTIONS[role])
        raise BadSdp(f"The {kind} section is {direction}; a {role} offer must be {wanted}.")
    for candidate in media.ice_candidates:
        check_candidate_address(candidate.ip)
    return MediaSection(kind, mid, direction, tuple(media.rtp.codecs))


def check_candidate_address(address: str, code: str = "bad_sdp") -> None:
    if address.endswith(".local") and 6 < len(address) <= 80:
        return  # an mDNS name, as browsers hide local addresses behind
    try:
        ipaddress.ip_address(address)
    except ValueError:
        message = "An ICE candidate's address is neither an IP address nor mDNS."
        raise ProtocolError(code, message) from None


# codecs


def _capability(kind: Kind, mime: str, profile: str | None) -> RTCRtpCodecCapability:
    for cap in RTCRtpSender.getCapabilities(kind).codecs:
        if cap.mimeType.lower() != mime.lower():
            continue
        if profile is None or cap.parameters.get("profile-level-id") == profile:
            return cap
    raise LookupError(f"aiortc does not offer {mime} {profile or ''}")


def _rtx() -> RTCRtpCodecCapability:
    return _capability("video", "video/rtx", None)


def _as_parameters(cap: RTCRtpCodecCapability) -> RTCRtpCodecParameters:
    return RTCRtpCodecParameters(
        mimeType=cap.mimeType,
        clockRate=cap.clockRate,
        channels=cap.channels,
        payloadType=0,
        parameters=dict(cap.parameters),
    )


def _supports(section: MediaSection, cap: RTCRtpCodecCapability) -> bool:
    wanted = _as_parameters(cap)
    return any(is_codec_compatible(wanted, offered) for offered in section.codecs)


def ingest_codecs(offer: Offer) -> dict[Kind, CodecChoice]:
    """The one codec per section that a publisher will send: H.264 over VP8, Opus."""
    choices: dict[Kind, CodecChoice] = {}
    for section in offer.sections:
        table = VIDEO_PREFERENCE if section.kind == "video" else AUDIO_PREFERENCE
        for mime, profile in table:
            cap = _capability(section.kind, mime, profile)
            if _supports(section, cap):
                prefs = (cap, _rtx()) if section.kind == "video" else (cap,)
                choices[section.kind] = CodecChoice(section.kind, cap.mimeType, prefs)
                break
        else:
            wanted = (
                "H264 (packetization-mode 1, baseline) or VP8"
                if section.kind == "video"
                else "Opus"
            )
            raise NoCodec(
                f"The {section.kind} section offers {section.offered()}; livehub takes {wanted}."
            )
    return choices


def playback_codec(section: MediaSection, mime: str) -> CodecChoice:
    """The publisher's codec for a viewer's section, exact variant first; ``NoCodec`` if absent."""
    caps = [
        cap
        for cap in RTCRtpSender.getCapabilities(section.kind).codecs
        if cap.mimeType.lower() == mime.lower() and _supports(section, cap)
    ]
    if not caps:
        name = mime.split("/")[-1]
        raise NoCodec(
            f"The stream's {section.kind} is {name}; the offer's {section.kind} section"
            f" offers {section.offered()}."
        )
    prefs = tuple(caps) + ((_rtx(),) if section.kind == "video" else ())
    return CodecChoice(section.kind, mime, prefs)


def any_codec(section: MediaSection) -> CodecChoice:
    """Preferences for a section with nothing to send (answered inactive)."""
    for cap in RTCRtpSender.getCapabilities(section.kind).codecs:
        if cap.name != "rtx" and _supports(section, cap):
            return CodecChoice(section.kind, cap.mimeType, (cap,))
    raise NoCodec(f"The {section.kind} section offers no codec livehub knows.")


# trickle ICE (RFC 8840 fragments, RFC 9725 section 4.3)


@dataclass(frozen=True)
class Candidate:
    mid: str | None
    line: str  # the value after "a=candidate:"


@dataclass(frozen=True)
class SdpFrag:
    ice_ufrag: str | None
    ice_pwd: str | None
    candidates: tuple[Candidate, ...]
    end_of_candidates: bool


def parse_sdpfrag(raw: bytes) -> SdpFrag:
    text = decode_body(raw, "ICE fragment", "bad_sdpfrag")
    ufrag = pwd = mid = None
    candidates: list[Candidate] = []
    end = False
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("m="):
            mid = None
        elif line.startswith("a=mid:"):
            mid = line[len("a=mid:") :]
        elif line.startswith("a=ice-ufrag:"):
            ufrag = line[len("a=ice-ufrag:") :]
        elif line.startswith("a=ice-pwd:"):
            pwd = line[len("a=ice-pwd:") :]
        elif line.startswith("a=candidate:"):
            value = line[len("a=candidate:") :]
            if len(value.split()) < 8:
                raise ProtocolError("bad_sdpfrag", "An a=candidate line is incomplete.")
            candidates.append(Candidate(mid, value))
        elif line == "a=end-of-candidates":
            end = True
    if len(candidates) > 64:
        raise ProtocolError("bad_sdpfrag", "At most 64 candidates per request.")
    return SdpFrag(ufrag, pwd, tuple(candidates), end)
