"""The words of the turn-taking benchmark: what is said, and where the speaker pauses.

Two text sets.  TUNING is the set the detectors' defaults were chosen on; HELDOUT was written
before any rule was tuned and is never used to choose one.  The benchmark renders both in every
voice family (:mod:`benchmarks.voice_families`), so a setting is scored on text and on voices it
was not chosen on.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TextSet:
    """The words of one labelled set: what is said, and where the speaker pauses."""

    complete: tuple[str, ...]
    # (unfinished first part, the rest): the pause between them is the hesitation.
    hesitations: tuple[tuple[str, str], ...]
    fillers: tuple[tuple[str, str], ...]
    two_sentences: tuple[tuple[str, str], ...]
    # Lines of one passage read aloud; a line ending in "," is a clause of a longer sentence.
    reading: tuple[str, ...]


# The set the detectors' defaults were chosen on.
TUNING = TextSet(
    complete=(
        "What is the capital of France?",
        "Tell me a joke about the weather.",
        "How far away is the moon?",
        "Can you recommend a good book?",
        "What time does the sun set today?",
        "Turn off the lights in the kitchen.",
        "Why is the sky blue?",
        "Set a timer for ten minutes.",
        # Finished questions that end on a preposition or a verb: a word list calls them unfinished.
        "Where are you from?",
        "What are you looking for?",
        "Do you know what time it is?",
    ),
    hesitations=(
        ("What is the capital of", "France?"),
        ("I would like to book a table for", "two people tonight."),
        ("Can you tell me how to get to", "the train station?"),
        ("My favourite colour is", "dark green."),
        ("Remind me to call my", "sister tomorrow."),
        # Fragments that end on a noun: as text they could be finished; only the rest says not.
        ("I'd like to book a table", "for two."),
        ("Can you order a pizza", "with extra cheese?"),
    ),
    fillers=(
        ("What is the capital of, um,", "France?"),
        ("I need, uh,", "a recipe for pancakes."),
        ("Could you, um,", "play some music?"),
        ("So, uh,", "what should I cook tonight?"),
    ),
    two_sentences=(
        ("I am planning a trip.", "What should I pack for Iceland?"),
        ("My printer is broken.", "How do I fix a paper jam?"),
        ("I just moved to Berlin.", "Where can I learn German?"),
        ("Let us play a game.", "Think of a number between one and ten."),
    ),
    reading=(
        "The old lighthouse stood at the edge of the cliff,",
        "its white paint worn thin by a hundred winters.",
        "Every evening the keeper climbed the narrow stairs,",
        "lit the great lamp,",
        "and watched the ships pass far below.",
        "Some nights the fog rolled in so thick",
        "that he could not see his own hands.",
        "On those nights he rang the bell,",
        "slow and steady,",
        "until the morning light returned.",
        "He kept a journal of every ship he saw,",
        "their names,",
        "their flags,",
        "and the weather they sailed through.",
        "Years later,",
        "when the lamp was replaced by a machine,",
        "the journal was found in a drawer,",
        "and it told the story of the whole coast.",
    ),
)
# Written before any rule was tuned and never used to choose one: other sentences, other
# unfinished endings (verbs and nouns as well as the function words the text rule knows),
# other fillers, another passage.  A rule that only holds on TUNING shows it here.  (Each
# sentence must be one Piper can be cut at its parts: espeak joins some word pairs.)
HELDOUT = TextSet(
    complete=(
        "Is it going to rain this weekend?",
        "Play some relaxing jazz.",
        "How many ounces are in a cup?",
        "Who wrote the novel Pride and Prejudice?",
        "Add eggs and butter to my shopping list.",
        "What is the difference between a virus and a bacterium?",
        "Thanks, that was really helpful.",
        "Where is the nearest pharmacy?",
        "What are you talking about?",
        "Who did you go with?",
        "What is this cake made of?",
        "Could you tell me where the station is?",
    ),
    hesitations=(
        ("I want to visit", "my grandmother next week."),
        ("How many people live in", "Tokyo?"),
        ("Send a text to", "my boss saying I will be late."),
        ("The thing I keep forgetting is", "where I parked the car."),
        ("Could you explain how a rainbow", "forms after the rain?"),
        ("I need a taxi", "to the airport."),
        ("Show me the pictures", "from our holiday."),
    ),
    fillers=(
        ("Tell me, er,", "something interesting about octopuses."),
        ("I was wondering, um,", "whether penguins can fly."),
        ("Can you, uh,", "turn the volume down?"),
        ("Well, um,", "how do I cook rice?"),
    ),
    two_sentences=(
        ("My phone battery dies quickly.", "How can I make it last longer?"),
        ("I have a job interview tomorrow.", "Can you give me some tips?"),
        ("It is my friend's birthday.", "What should I buy her?"),
        ("I am learning to play chess.", "Which opening should I learn first?"),
    ),
    reading=(
        "The river began as a thin stream high in the mountains,",
        "fed by snow that melted every spring.",
        "It wound through forests of pine,",
        "past villages where children played on its banks,",
        "and slowly grew wider and deeper.",
        "By the time it reached the plains",
        "it carried boats loaded with grain and timber.",
        "Farmers built their fields along its course,",
        "and towns grew where it could be crossed.",
        "In dry summers the water sank so low",
        "that old stones appeared in its bed,",
        "each one carved by hands long gone.",
        "At last,",
        "after hundreds of miles,",
        "it spread into a wide delta",
        "and met the sea.",
    ),
)
TEXT_SETS = {"tuning": TUNING, "heldout": HELDOUT}
HESITATION_PAUSES_S = (0.3, 0.6, 0.9, 1.2)
FILLER_PAUSES_S = (0.6, 0.9)
TWO_SENTENCE_PAUSE_S = 0.5
# Pauses a reader makes: after a comma-ending line, after a full stop (cycled through).
READING_CLAUSE_PAUSES_S = (0.35, 0.5, 0.7)
READING_SENTENCE_PAUSES_S = (0.6, 0.9, 1.1)

CLASSES = (
    "complete",
    "hesitation",
    "hesitation_final",
    "filler",
    "filler_final",
    "two_sentences",
    "reading",
    "reading_final",
)
CLASS_LABELS = {
    "complete": "complete questions",
    "hesitation": "unfinished phrase + pause (cut from the whole sentence)",
    "hesitation_final": "unfinished phrase + pause (phrase said alone: final intonation)",
    "filler": "filler (um/uh) + pause (cut from the whole sentence)",
    "filler_final": "filler (um/uh) + pause (phrase said alone: final intonation)",
    "two_sentences": "two sentences",
    "reading": "long reading (sentences cut at their clauses)",
    "reading_final": "long reading (each line said alone)",
}
# The target class: a speaker who pauses mid-sentence, however the pause was voiced.
HESITATION_CLASSES = ("hesitation", "hesitation_final", "filler", "filler_final")
