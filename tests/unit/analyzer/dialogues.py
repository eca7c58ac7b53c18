"""Real-looking child-robot dialogues (EN and VI) with what a careful reader counts."""

from __future__ import annotations

from dataclasses import dataclass

from analyzer.domain.model import Emotion, Role, Turn


@dataclass(frozen=True)
class Dialogue:
    name: str
    turns: tuple[Turn, ...]
    questions: int
    emotion: Emotion
    facts: tuple[str, ...]


def _turns(*pairs: tuple[str, str]) -> tuple[Turn, ...]:
    return tuple(Turn(Role.USER if who == "u" else Role.ASSISTANT, text) for who, text in pairs)


DIALOGUES = (
    Dialogue(
        name="en_dinosaurs",
        turns=_turns(
            ("a", "Hi there! What would you like to talk about today?"),
            ("u", "Hi! My name is Tom. I like dinosaurs."),
            ("a", "Dinosaurs are amazing. Do you have a favourite one?"),
            ("u", "My favorite dinosaur is the T-rex. Why did they die?"),
            ("a", "Scientists think a huge asteroid hit the Earth."),
            ("u", "Wow, that is so interesting! How big was it"),
            ("a", "About ten kilometres wide!"),
            ("u", "Cool. Can we talk about volcanoes next time?"),
        ),
        questions=3,  # "Why did they die?", "How big was it", "Can we talk ...?"
        emotion=Emotion.INTERESTING,
        facts=("name: tom", "likes dinosaurs", "favorite dinosaur: the t-rex"),
    ),
    Dialogue(
        name="en_bored_homework",
        turns=_turns(
            ("a", "Shall we practise some spelling words?"),
            ("u", "No. This is boring."),
            ("a", "How about a spelling game instead?"),
            ("u", "Games are not fun either. I am bored."),
            ("a", "Okay, what would you rather do?"),
            ("u", "I don't know. Nothing."),
        ),
        questions=0,
        emotion=Emotion.BORING,
        facts=(),
    ),
    Dialogue(
        name="en_sad_pet",
        turns=_turns(
            ("a", "You seem quiet today. Is everything okay?"),
            ("u", "I have a hamster called Bean. He is sick and I am sad."),
            ("a", "I'm sorry to hear that. Have you told your mum?"),
            ("u", "Yes. Will he get better?"),
            ("a", "Lots of hamsters get well with a vet's help."),
            ("u", "I miss my grandma too. She lives far away."),
        ),
        questions=1,
        emotion=Emotion.SAD,
        facts=("has a hamster called bean",),
    ),
    Dialogue(
        name="vi_animals",
        turns=_turns(
            ("a", "Chào con! Hôm nay con muốn nói chuyện về gì?"),
            ("u", "Con chào bạn. Tên con là Minh ạ."),
            ("a", "Chào Minh! Con thích con vật nào nhất?"),
            ("u", "Con thích con mèo lắm. Nhà con có một con mèo tên là Mun."),
            ("a", "Mun dễ thương quá!"),
            ("u", "Bạn có thích mèo không? Mèo sống được bao nhiêu năm?"),
            ("a", "Mèo thường sống khoảng mười lăm năm."),
            ("u", "Hay quá! Vui ghê."),
        ),
        questions=2,  # "Bạn có thích mèo không?", "Mèo sống được bao nhiêu năm?"
        emotion=Emotion.HAPPY,  # thích, vui + hay quá (interesting): happy wins 2 to 1
        facts=("name: minh", "thích con mèo", "có một con mèo tên là mun"),
    ),
    Dialogue(
        name="vi_school_sad",
        turns=_turns(
            ("a", "Hôm nay ở trường con thế nào?"),
            ("u", "Con không vui. Bạn Nam trêu con."),
            ("a", "Ôi, con có kể với cô giáo chưa?"),
            ("u", "Con chưa kể. Con buồn lắm."),
            ("a", "Mình ở đây với con nhé."),
            ("u", "Sao bạn ấy lại trêu con"),
        ),
        questions=1,  # "Sao bạn ấy lại trêu con"
        emotion=Emotion.SAD,
        facts=(),
    ),
    Dialogue(
        name="vi_questions_and_boredom",
        turns=_turns(
            ("a", "Mình cùng học đếm số nhé!"),
            ("u", "Con chẳng thích học đếm. Chán quá."),
            ("a", "Vậy mình chơi trò đố vui nha?"),
            ("u", "Mấy giờ rồi? Mẹ con về chưa"),
            ("a", "Bây giờ là năm giờ chiều."),
            ("u", "Con 7 tuổi rồi đó. Con có hai em gái."),
        ),
        questions=2,  # "Mấy giờ rồi?", "Mẹ con về chưa"
        emotion=Emotion.BORING,
        facts=("age: 7", "có hai em gái"),
    ),
)
