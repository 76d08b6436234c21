"""What the seed's conversations say: bots' names, the questions they ask, and the answers that fit them."""

from __future__ import annotations

from dataclasses import dataclass, field

BOT_NAMES = [
    "Global Tara Bot",
    "MPC-UP-Mentor Feedback",
    "DST Form Bot",
    "UCI Demo",
    "Comic Book Bot",
    "शिक्षक सहायता बॉट",
    "Nipun Lakshya Survey",
]
#: Questions a bot may ask: the X Path's name, the title, and a multiple-choice question's options or
#: the kind of free text that answers it (:data:`FREE_TEXT`).
QUESTION_BANK: list[tuple[str, str, list[str] | str]] = [
    (
        "menu",
        "Hi, I'm Tara,\nMay I help you?\n\nReply with a number from the options shown to explore further",
        ["1 Your Education Boards", "2 Comic books", "3 DIKSHA mobile app", "4 DIKSHA queries"],
    ),
    (
        "class",
        "Have fun while you learn using comic books! \nEach comic book is aligned to a chapter.\n\n"
        "Choose your class",
        ["Class 1", "Class 2", "Class 3", "Class 4"],
    ),
    ("staff_id", "सत्यापन के लिए कृपया अपना *मानव संपदा* आईडी दर्ज करें", "staff_id"),
    ("mentor", "कृपया मेंटर का नाम लिखे", "name"),
    ("covered", 'Did the session cover "Foundational Literacy"?', ["Yes", "No"]),
    ("location", "Record your location.", "place"),
    ("students", "How many students attended, in total?", "count"),
    ("rating", "Rate the training: 1 (poor) to 5 (excellent)", ["1", "2", "3", "4", "5"]),
    ("library", "क्या आपके विद्यालय में पुस्तकालय है?", ["हाँ", "नहीं", "पता नहीं"]),
    ("feedback", "Any other feedback for the team?", "feedback"),
]
#: Free text that fits each kind of question.
FREE_TEXT = {
    "name": [
        "Sunita Verma",
        "Rakesh Kumar",
        "Anjali Singh",
        "Mohd. Imran",
        "सीमा यादव",
        "राजेश मिश्रा",
        "Priya",
    ],
    "place": [
        "Lucknow",
        "Varanasi",
        "Sitapur block",
        "Bahraich, UP",
        "26.8467 80.9462",
        "Gorakhpur",
        "Jhansi",
    ],
    "feedback": [
        "Very useful session",
        "More examples please",
        "बहुत अच्छा प्रशिक्षण",
        "Audio was not clear",
        "Good",
        "Please share the slides",
        "समय कम था",
    ],
}
#: Answers that exercise the Spark CSV dialect: quotes, raw newlines, backslashes, Hindi, emoji.
EDGE_ANSWERS = [
    "Line one\nline two of the answer",
    'He said "hello", then left',
    "C:\\Users\\teacher\\notes.txt",
    "a \\n is not a newline here",
    'मेरा उत्तर: "ठीक है"',
    "ok 👍",
    'ends with a quote "',
    "multi\nline\nwith, commas",
]
#: IST hours in which sessions start.
ACTIVE_HOURS = (6.5, 22.5)


@dataclass
class Question:
    id: str
    kind: str
    title: str
    choices: list[tuple[str, str]]
    xpath: str
    free_text: str = ""
    weights: list[float] = field(default_factory=list)


@dataclass
class SeedBot:
    id: str
    name: str
    questions: list[Question]
    users: list[str] = field(default_factory=list)
    events_by_day: dict[str, int] = field(default_factory=dict)
    stop_chance: float = 0.05

    def expected_answers(self) -> float:
        """The mean answers of a session: each step after the first is reached with ``1 - stop_chance``."""
        return sum((1 - self.stop_chance) ** step for step in range(len(self.questions)))


@dataclass
class Session:
    """A session in progress: who, which bot, how many answers it gives, and the next step."""

    bot: SeedBot
    user: str
    id: str
    length: int
    step: int = 0
    last_moment: float = 0.0
