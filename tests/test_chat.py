"""The chat box: Send appends the question and the reply, the reply sees the whole conversation, and a failing
reply leaves the conversation as it was. Real ipywidgets, clicked as a user would click them."""

from course_lib.chat import chat_box


def echo(conversation):
    return f"{len(conversation)} turn(s); you said {conversation[-1]['content']!r}"


def type_and_send(box, question):
    box.text.value = question
    box.send.click()


def test_send_shows_the_question_and_the_answer_and_clears_the_field():
    box = chat_box(echo)
    type_and_send(box, "What is 2 + 3?")
    assert box.conversation == [{"role": "user", "content": "What is 2 + 3?"},
                                {"role": "assistant", "content": "1 turn(s); you said 'What is 2 + 3?'"}]
    assert "<b>You:</b> What is 2 + 3?" in box.history.value
    assert "<b>Model:</b> 1 turn(s)" in box.history.value
    assert box.text.value == "" and not box.send.disabled


def test_the_reply_gets_the_whole_conversation_so_far():
    seen = []
    box = chat_box(lambda conversation: seen.append([t["role"] for t in conversation]) or "ok")
    type_and_send(box, "first")
    type_and_send(box, "second")
    assert seen == [["user"], ["user", "assistant", "user"]]
    assert len(box.conversation) == 4


def test_an_empty_question_sends_nothing():
    calls = []
    box = chat_box(lambda conversation: calls.append(conversation) or "ok")
    type_and_send(box, "   ")
    assert calls == [] and box.conversation == []


def test_text_is_escaped_so_markup_shows_as_typed():
    box = chat_box(lambda conversation: "<script>x</script>")
    type_and_send(box, "is 3 < 5 & 5 > 3?")
    assert "is 3 &lt; 5 &amp; 5 &gt; 3?" in box.history.value
    assert "<script>" not in box.history.value and "&lt;script&gt;" in box.history.value


def test_a_failing_reply_is_shown_and_the_conversation_stays_as_it_was():
    def broken(conversation):
        raise RuntimeError("CUDA out of memory")

    box = chat_box(broken)
    type_and_send(box, "hello")
    assert box.conversation == []
    assert "Error:</b> RuntimeError: CUDA out of memory" in box.history.value
    assert not box.send.disabled  # the button works again


def test_new_chat_forgets_the_conversation_and_boxes_do_not_share_one():
    first, second = chat_box(echo), chat_box(echo)
    type_and_send(first, "hello")
    assert second.conversation == []
    first.children[0].children[2].click()  # "New chat"
    assert first.conversation == [] and "No questions yet" in first.history.value


def test_in_chinese_the_box_and_its_turns_are_labelled_in_chinese(monkeypatch):
    from course_lib.language import LANGUAGE_ENV

    monkeypatch.setenv(LANGUAGE_ENV, "zh")
    box = chat_box(lambda conversation: "4")
    assert (box.send.description, box.text.placeholder) == ("发送", "输入问题，然后按“发送”")
    box.ask("2+2?")
    assert "<b>你:</b> 2+2?" in box.history.value and "<b>模型:</b> 4" in box.history.value
