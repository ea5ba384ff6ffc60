"""A small chat box for trying a model by hand: a text field, a Send button, and the conversation so far.

The reply function (the notebook's own `generate` call) gets the whole conversation each time, as the chat
template wants it. Headless (CI, nbmake) nobody presses Send, so the box only displays and nothing runs.
"""

from __future__ import annotations

import html

from course_lib.language import tr


def render(conversation: list[dict]) -> str:
    """The conversation as HTML, one paragraph per turn, the text escaped and its line breaks kept."""
    who = {"user": tr("You", "你"), "assistant": tr("Model", "模型"), "system": tr("System", "系统")}
    return "".join(f"<p style='white-space: pre-wrap; margin: 4px 0'><b>{who.get(turn['role'], turn['role'])}:</b> "
                   f"{html.escape(turn['content'])}</p>" for turn in conversation)


def chat_box(reply, placeholder: str | None = None):
    """A box whose Send button appends the question, calls `reply(conversation)` and appends its answer.

    `reply` takes the list of {"role", "content"} turns so far (ending with the new question) and returns the
    assistant's next turn as text. An exception in it is shown in the box; the question is then dropped, so
    the conversation stays as it was. `box.ask(question)` does what Send does, for code and tests.
    """
    import ipywidgets as widgets

    send_label, no_questions = tr("Send", "发送"), f"<i>{tr('No questions yet.', '还没有提问。')}</i>"
    if placeholder is None:
        placeholder = tr("Ask a question, then press Send", "输入问题，然后按“发送”")
    text = widgets.Text(placeholder=placeholder, layout=widgets.Layout(width="70%"))
    send = widgets.Button(description=send_label, button_style="primary")
    new_chat = widgets.Button(description=tr("New chat", "新对话"))
    history = widgets.HTML(no_questions)

    class ChatBox(widgets.VBox):
        def ask(self, question: str) -> str | None:
            question = question.strip()
            if not question:
                return None
            self.conversation.append({"role": "user", "content": question})
            send.disabled, send.description = True, tr("Answering...", "回答中……")
            history.value = render(self.conversation)
            try:
                answer = reply(list(self.conversation))
            except Exception as error:
                self.conversation.pop()
                history.value = render(self.conversation) + (
                    f"<p style='color: #b00'><b>{tr('Error:', '出错：')}</b> "
                    f"{html.escape(f'{type(error).__name__}: {error}')}</p>")
                return None
            finally:
                send.disabled, send.description = False, send_label
            self.conversation.append({"role": "assistant", "content": answer})
            history.value = render(self.conversation)
            return answer

        def clear(self) -> None:
            self.conversation.clear()
            history.value = no_questions

    box = ChatBox([widgets.HBox([text, send, new_chat]), history])
    box.conversation = []  # the turns so far, {"role", "content"} each
    box.text, box.send, box.history = text, send, history

    def on_send(_button):
        question, text.value = text.value, ""
        box.ask(question)

    send.on_click(on_send)
    new_chat.on_click(lambda _button: box.clear())
    return box
