"""Turn-taking: when the user's turn is over, and whether speech over a reply stops it.

* ``endpointing.py``: Silero VAD frame by frame; the true end of speech, pauses, turns.
* ``smart_turn.py``: Smart Turn v3.2, an audio model of "does this sound finished?".
* ``end_of_turn_text.py``: our text end-of-turn model: does the transcript read finished?
* ``policy.py``: the end-of-turn rule, :func:`decide`, a pure function of the evidence.
* ``detection.py``: the stage that feeds the endpointer and gathers each pause's evidence.
* ``interruption.py``: what the user says over the reply, and whether it should stop it.

Everything outside this package imports from here, never from the modules inside.
"""

from voice.turns.detection import (
    FRAME_MS,
    SPECULATE_AFTER_MS,
    DetectedTurn,
    Speculation,
    SpeculationStats,
    TurnDetector,
)
from voice.turns.end_of_turn_text import EndOfTurnModelError, TextEndOfTurn, TextVerdict, load_text_end_of_turn
from voice.turns.endpointing import FRAME, Endpointer, SpeechStarted, TurnEnded
from voice.turns.interruption import InterruptionScreen, ReplyTracker
from voice.turns.policy import TURN_DETECTOR_LABELS, TURN_DETECTORS, EndSignal, TurnPolicy, decide
from voice.turns.smart_turn import SmartTurnModel, SmartTurnUnavailable, TurnPrediction, smart_turn_model

__all__ = [
    "FRAME",
    "FRAME_MS",
    "SPECULATE_AFTER_MS",
    "TURN_DETECTORS",
    "TURN_DETECTOR_LABELS",
    "DetectedTurn",
    "EndOfTurnModelError",
    "EndSignal",
    "Endpointer",
    "InterruptionScreen",
    "ReplyTracker",
    "SmartTurnModel",
    "SmartTurnUnavailable",
    "Speculation",
    "SpeculationStats",
    "SpeechStarted",
    "TextEndOfTurn",
    "TextVerdict",
    "TurnDetector",
    "TurnEnded",
    "TurnPolicy",
    "TurnPrediction",
    "decide",
    "load_text_end_of_turn",
    "smart_turn_model",
]
