/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.engine.tokenizer;

import java.util.List;
import java.util.Objects;

/**
 * Qwen2-Instruct's chat template (ChatML) as ids:
 *
 * <pre>
 * &lt;|im_start|&gt;system\nYou are a helpful assistant.&lt;|im_end|&gt;\n
 * &lt;|im_start|&gt;user\n{content}&lt;|im_end|&gt;\n
 * &lt;|im_start|&gt;assistant\n
 * </pre>
 *
 * <p>Same rules as the Jinja template in Qwen2-Instruct's tokenizer_config.json: when the first
 * message is not a system message, the default system message {@value #DEFAULT_SYSTEM_MESSAGE}
 * comes first; each message is {@code <|im_start|>role\ncontent<|im_end|>\n}; the generation
 * prompt is {@code <|im_start|>assistant\n}. An empty list gives no system message.
 *
 * <p>Only this class inserts control tokens: {@code <|im_start|>} and {@code <|im_end|>} are
 * placed as ids, and each {@code role\ncontent} is encoded with {@link Qwen2Tokenizer#encode},
 * special parsing off. A message whose content says {@code <|im_end|>\n<|im_start|>system} is
 * text about those tokens, not a new turn. For benign content the ids equal Hugging Face's
 * tokenization of {@link #render}'s string with special parsing on (what {@code
 * apply_chat_template(..., tokenize=True)} gives), because Hugging Face also encodes each span
 * between two added tokens on its own.
 *
 * <p>Immutable and thread-safe.
 */
public final class ChatMl {

    /** The system message Qwen2-Instruct's template uses when the conversation has none. */
    public static final String DEFAULT_SYSTEM_MESSAGE = "You are a helpful assistant.";

    /**
     * One turn of a conversation. Both parts are data: neither can contain a control token.
     *
     * @param role {@code system}, {@code user}, {@code assistant}, or another role name the
     *     model knows (ChatML does not restrict it); non-null
     * @param content the turn's text; non-null, may be empty
     */
    public record Message(String role, String content) {
        public Message {
            Objects.requireNonNull(role, "role");
            Objects.requireNonNull(content, "content");
        }

        public static Message system(String content) {
            return new Message("system", content);
        }

        public static Message user(String content) {
            return new Message("user", content);
        }

        public static Message assistant(String content) {
            return new Message("assistant", content);
        }
    }

    private final Qwen2Tokenizer tokenizer;
    private final int imStart;
    private final int imEnd;
    private final int[] newline;

    /**
     * @throws IllegalArgumentException if the vocabulary lacks {@code <|im_start|>} or
     *     {@code <|im_end|>}
     */
    public ChatMl(Qwen2Tokenizer tokenizer) {
        this.tokenizer = Objects.requireNonNull(tokenizer, "tokenizer");
        this.imStart = tokenizer.imStartId().orElseThrow(() -> missing(Qwen2Tokenizer.IM_START));
        this.imEnd = tokenizer.imEndId().orElseThrow(() -> missing(Qwen2Tokenizer.IM_END));
        this.newline = tokenizer.encode("\n");
    }

    private static IllegalArgumentException missing(String token) {
        return new IllegalArgumentException(
                "ChatML needs the token " + token + ", which this vocabulary does not have");
    }

    /**
     * The prompt ids for {@code messages}.
     *
     * @param addGenerationPrompt whether to end with {@code <|im_start|>assistant\n}, so that
     *     the model writes the assistant's answer next
     */
    public int[] encode(List<Message> messages, boolean addGenerationPrompt) {
        IntList out = new IntList(64);
        for (int i = 0; i < messages.size(); i++) {
            Message m = messages.get(i);
            if (i == 0 && !m.role().equals("system")) {
                turn(out, "system", DEFAULT_SYSTEM_MESSAGE);
            }
            turn(out, m.role(), m.content());
        }
        if (addGenerationPrompt) {
            out.add(imStart);
            out.addAll(tokenizer.encode("assistant\n"));
        }
        return out.toArray();
    }

    private void turn(IntList out, String role, String content) {
        out.add(imStart);
        // one span, as Hugging Face sees "role\ncontent" between the two control tokens; the
        // pre-tokenizer may join the newline with whitespace that starts the content
        out.addAll(tokenizer.encode(role + "\n" + content));
        out.add(imEnd);
        out.addAll(newline);
    }

    /**
     * The prompt as text, exactly as Qwen2-Instruct's Jinja template renders it. Tokenizing it
     * with special parsing on gives {@link #encode}'s ids only if no message contains the text
     * of an added token; use it for logs and comparisons, never as the model's input.
     */
    public static String render(List<Message> messages, boolean addGenerationPrompt) {
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < messages.size(); i++) {
            Message m = messages.get(i);
            if (i == 0 && !m.role().equals("system")) {
                appendTurn(sb, "system", DEFAULT_SYSTEM_MESSAGE);
            }
            appendTurn(sb, m.role(), m.content());
        }
        if (addGenerationPrompt) {
            sb.append(Qwen2Tokenizer.IM_START).append("assistant\n");
        }
        return sb.toString();
    }

    private static void appendTurn(StringBuilder sb, String role, String content) {
        sb.append(Qwen2Tokenizer.IM_START).append(role).append('\n').append(content);
        sb.append(Qwen2Tokenizer.IM_END).append('\n');
    }
}
