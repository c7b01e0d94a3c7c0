/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.engine.tokenizer;

import java.nio.file.Path;
import java.text.Normalizer;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.OptionalInt;

/**
 * The Qwen2 tokenizer (also Qwen2.5's and Qwen3's, which share its 151,643 byte-level BPE tokens
 * and merges): byte-level BPE that gives exactly the ids of Hugging Face's {@code tokenizers} on
 * the same tokenizer.json.
 *
 * <p>Encoding, in Hugging Face's order: NFC normalization; the split into pieces by Qwen2's
 * pre-tokenizer regex ({@link Qwen2PreTokenizer}); each piece's UTF-8 bytes written in GPT-2's
 * byte-level alphabet ({@link ByteLevel}); BPE merges by rank within each piece
 * ({@link BytePairEncoder}).
 *
 * <p>Text is data unless a caller says otherwise. {@link #encode} never produces an added token
 * (special or not): a literal {@code <|im_end|>} in the text is encoded as the bytes
 * {@code <|im_end|>}, so text from events, SQL arguments and files cannot forge a ChatML turn
 * (see {@link ChatMl}). {@link #encodeWithSpecialTokens} is Hugging Face's {@code
 * tokenizer(text)}: every added token found in the text becomes its id. Note that Hugging Face's
 * own "special parsing off" ({@code split_special_tokens=True}) and llama.cpp's {@code
 * parse_special=false} still match the non-special added tokens (Qwen3's {@code <think>},
 * {@code <tool_call>}, the FIM tokens); {@code encode} does not, on purpose.
 *
 * <p>Input that UTF-8 cannot carry: a Java string may hold unpaired surrogates; each is encoded
 * as one U+FFFD, as a lossy UTF-8 encoder writes it. Hugging Face takes UTF-8 and never sees
 * them (DJL's JNI binding happens to turn each into three U+FFFD; we do not copy that). Unicode
 * version: letters, numbers and NFC come from the running JVM's tables (Unicode 13 on Java 17),
 * so code points assigned later may split or normalize differently from Hugging Face.
 *
 * <p>Instances are immutable and thread-safe; the only shared mutable state is a concurrent
 * cache of encoded pieces.
 */
public final class Qwen2Tokenizer {

    /** Qwen's end-of-text token, also the padding token of the base models. */
    public static final String ENDOFTEXT = "<|endoftext|>";

    /** ChatML: opens a turn; followed by the role name and a newline. */
    public static final String IM_START = "<|im_start|>";

    /** ChatML: closes a turn; the stop token of the instruct models. */
    public static final String IM_END = "<|im_end|>";

    /** GGUF {@code tokenizer.ggml.token_type} values. */
    static final int TYPE_NORMAL = 1;

    static final int TYPE_UNKNOWN = 2;
    static final int TYPE_CONTROL = 3;
    static final int TYPE_USER_DEFINED = 4;
    static final int TYPE_UNUSED = 5;
    static final int TYPE_BYTE = 6;

    /** An added token as tokenizer.json's {@code added_tokens} lists it. */
    record AddedToken(int id, String content, boolean special, boolean normalized) {}

    /** Token string by id; null where no token has that id. */
    private final String[] tokens;

    /** Decoded bytes of token i are {@code tokenBytes[tokenOffsets[i], tokenOffsets[i + 1])}. */
    private final byte[] tokenBytes;

    private final int[] tokenOffsets;
    private final boolean[] special;
    private final Map<String, Integer> ids;
    private final int vocabSize;
    private final BytePairEncoder bpe;

    /** Added tokens matched in the raw text (tokenizer.json {@code normalized: false}). */
    private final AddedTokenMatcher rawAdded;

    /** Added tokens matched after normalization ({@code normalized: true}). */
    private final AddedTokenMatcher normalizedAdded;

    private final boolean nfc;

    /**
     * @param tokens token string by id, null for ids without one
     * @param bpeVocab the BPE model's vocabulary (no added tokens)
     * @param merges merge pairs in rank order
     * @param added the added tokens, each also present in {@code tokens}
     */
    private Qwen2Tokenizer(
            String[] tokens,
            Map<String, Integer> bpeVocab,
            List<String[]> merges,
            boolean ignoreMerges,
            List<AddedToken> added,
            boolean nfc) {
        this.tokens = tokens;
        this.nfc = nfc;
        this.bpe = new BytePairEncoder(bpeVocab, merges, ignoreMerges);
        this.special = new boolean[tokens.length];
        this.rawAdded = new AddedTokenMatcher();
        this.normalizedAdded = new AddedTokenMatcher();
        for (AddedToken t : added) {
            special[t.id()] = t.special();
            (t.normalized() ? normalizedAdded : rawAdded).add(t.content(), t.id());
        }
        // string -> id: added tokens first, then the BPE vocabulary, as Hugging Face's
        // token_to_id looks them up; then the rest (GGUF unused tokens)
        this.ids = new HashMap<>(tokens.length * 4 / 3 + 16);
        ids.putAll(bpeVocab);
        for (AddedToken t : added) {
            ids.put(t.content(), t.id());
        }
        int count = 0;
        int totalBytes = 0;
        byte[][] perToken = new byte[tokens.length][];
        for (int id = 0; id < tokens.length; id++) {
            if (tokens[id] != null) {
                count++;
                ids.putIfAbsent(tokens[id], id);
                perToken[id] = ByteLevel.tokenBytes(tokens[id]);
                totalBytes += perToken[id].length;
            }
        }
        this.vocabSize = count;
        this.tokenBytes = new byte[totalBytes];
        this.tokenOffsets = new int[tokens.length + 1];
        int at = 0;
        for (int id = 0; id < tokens.length; id++) {
            tokenOffsets[id] = at;
            if (perToken[id] != null) {
                System.arraycopy(perToken[id], 0, tokenBytes, at, perToken[id].length);
                at += perToken[id].length;
            }
        }
        tokenOffsets[tokens.length] = at;
    }

    /**
     * Reads a Hugging Face tokenizer.json of the Qwen2 kind: {@code model} BPE with {@code vocab}
     * and {@code merges} (strings {@code "a b"} or two-element arrays), {@code added_tokens},
     * normalizer NFC (or none), pre-tokenizer Split by Qwen2's regex then ByteLevel, decoder
     * ByteLevel. Added tokens get the ids Hugging Face gives them on loading, which are their
     * {@code id} fields in a consistent file such as Qwen's (see {@code
     * TokenizerJsonReader#assignIds} for a file whose ids have gaps).
     *
     * @throws io.flinkqwen.engine.weights.ModelFormatException if the file is not such a
     *     tokenizer; the message names the file and the field
     * @throws UnsupportedOperationException naming the setting, for a well-formed tokenizer.json
     *     of another kind (another pre-tokenizer regex, BPE dropout, added tokens with lstrip...)
     * @throws java.io.UncheckedIOException if the file cannot be read
     */
    public static Qwen2Tokenizer fromTokenizerJson(Path tokenizerJson) {
        TokenizerJsonReader.Contents c = TokenizerJsonReader.read(tokenizerJson);
        try {
            return new Qwen2Tokenizer(
                    c.tokens(), c.vocab(), c.merges(), c.ignoreMerges(), c.added(), c.nfc());
        } catch (IllegalArgumentException e) {
            throw new io.flinkqwen.engine.weights.ModelFormatException(
                    tokenizerJson + ": " + e.getMessage(), e);
        }
    }

    /**
     * Builds the tokenizer from a vocabulary as a GGUF file stores it, with Qwen2's NFC
     * normalizer and pre-tokenizer regex (GGUF {@code tokenizer.ggml.pre = "qwen2"}).
     *
     * @param tokens token strings indexed by id, in the byte-level alphabet for BPE tokens
     *     ({@code tokenizer.ggml.tokens}); fillers such as {@code [PAD151646]} are fine
     * @param merges merges in rank order, each two tokens separated by one space ({@code
     *     tokenizer.ggml.merges})
     * @param tokenTypes per id ({@code tokenizer.ggml.token_type}): 1 normal, 2 unknown and 6
     *     byte are BPE tokens; 3 control tokens are special added tokens and 4 user-defined
     *     tokens non-special added tokens, both found as whole strings by {@link
     *     #encodeWithSpecialTokens} and never by {@link #encode}; 5 unused tokens only decode
     * @throws IllegalArgumentException naming the id or merge that is wrong
     */
    public static Qwen2Tokenizer fromVocabulary(
            List<String> tokens, List<String> merges, int[] tokenTypes) {
        Objects.requireNonNull(tokens, "tokens");
        Objects.requireNonNull(merges, "merges");
        Objects.requireNonNull(tokenTypes, "tokenTypes");
        if (tokenTypes.length != tokens.size()) {
            throw new IllegalArgumentException(
                    String.format(
                            "%d tokens but %d token types; GGUF stores one type per token",
                            tokens.size(), tokenTypes.length));
        }
        String[] table = new String[tokens.size()];
        Map<String, Integer> vocab = new HashMap<>(tokens.size() * 4 / 3 + 16);
        List<AddedToken> added = new ArrayList<>();
        Map<String, Integer> seen = new HashMap<>();
        for (int id = 0; id < table.length; id++) {
            String token = tokens.get(id);
            if (token == null || token.isEmpty()) {
                throw new IllegalArgumentException("token " + id + " is null or empty");
            }
            table[id] = token;
            int type = tokenTypes[id];
            if (type == TYPE_UNUSED) {
                continue;
            }
            Integer before = seen.putIfAbsent(token, id);
            if (before != null) {
                throw new IllegalArgumentException(
                        String.format("tokens %d and %d are both '%s'", before, id, token));
            }
            switch (type) {
                case TYPE_NORMAL:
                case TYPE_UNKNOWN:
                case TYPE_BYTE:
                    vocab.put(token, id);
                    break;
                case TYPE_CONTROL:
                    added.add(new AddedToken(id, token, true, false));
                    break;
                case TYPE_USER_DEFINED:
                    added.add(new AddedToken(id, token, false, false));
                    break;
                default:
                    throw new IllegalArgumentException(
                            String.format(
                                    "token %d ('%s') has type %d; GGUF token types are 1..6",
                                    id, token, type));
            }
        }
        List<String[]> pairs = new ArrayList<>(merges.size());
        for (int rank = 0; rank < merges.size(); rank++) {
            String merge = merges.get(rank);
            int space = merge == null ? -1 : merge.indexOf(' ');
            if (space <= 0 || space == merge.length() - 1 || merge.indexOf(' ', space + 1) >= 0) {
                throw new IllegalArgumentException(
                        "merge " + rank + " ('" + merge + "') is not two tokens separated by one space");
            }
            pairs.add(new String[] {merge.substring(0, space), merge.substring(space + 1)});
        }
        return new Qwen2Tokenizer(table, vocab, pairs, false, added, true);
    }

    /**
     * Encodes {@code text} as data: NFC, Qwen2 pre-tokenization, byte-level BPE. No added token
     * is ever produced; {@code "<|im_end|>"} in the text becomes the ids of its bytes. This is
     * the method for anything that comes from users, events or files.
     */
    public int[] encode(String text) {
        String s = normalize(replaceLoneSurrogates(text));
        IntList out = new IntList(s.length() / 3 + 8);
        encodeNormalized(s, 0, s.length(), out);
        return out.toArray();
    }

    /**
     * Encodes {@code text} like Hugging Face's {@code tokenizer(text)} (without a post-processor;
     * Qwen's adds nothing): every added token in the text, special or not, becomes its id (the
     * leftmost match first, the longest of those that start there), and the text around them is
     * encoded as by {@link #encode}, each span on its own. For trusted prompts only.
     */
    public int[] encodeWithSpecialTokens(String text) {
        String s = replaceLoneSurrogates(text);
        IntList out = new IntList(s.length() / 3 + 8);
        rawAdded.split(
                s,
                new AddedTokenMatcher.Sink() {
                    @Override
                    public void text(String raw, int from, int to) {
                        String segment = normalize(raw.substring(from, to));
                        if (normalizedAdded.isEmpty()) {
                            encodeNormalized(segment, 0, segment.length(), out);
                        } else {
                            normalizedAdded.split(
                                    segment,
                                    new AddedTokenMatcher.Sink() {
                                        @Override
                                        public void text(String norm, int f, int t) {
                                            encodeNormalized(norm, f, t, out);
                                        }

                                        @Override
                                        public void token(int id) {
                                            out.add(id);
                                        }
                                    });
                        }
                    }

                    @Override
                    public void token(int id) {
                        out.add(id);
                    }
                });
        return out.toArray();
    }

    private void encodeNormalized(String s, int from, int to, IntList out) {
        String span = from == 0 && to == s.length() ? s : s.substring(from, to);
        for (int i = 0; i < span.length(); ) {
            int end = Qwen2PreTokenizer.next(span, i);
            bpe.encodePiece(span.substring(i, end), out);
            i = end;
        }
    }

    private String normalize(String s) {
        if (!nfc) {
            return s;
        }
        // below U+0300 every character is its own NFC and composes with nothing before U+0300
        // (checked exhaustively by a test), which spares the normalizer most ASCII and Latin text
        for (int i = 0; i < s.length(); i++) {
            if (s.charAt(i) >= 0x300) {
                return Normalizer.normalize(s, Normalizer.Form.NFC);
            }
        }
        return s;
    }

    /** {@code s} with every unpaired surrogate replaced by U+FFFD; {@code s} itself if none. */
    static String replaceLoneSurrogates(String s) {
        char[] fixed = null;
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (!Character.isSurrogate(c)) {
                continue;
            }
            if (Character.isHighSurrogate(c)
                    && i + 1 < s.length()
                    && Character.isLowSurrogate(s.charAt(i + 1))) {
                i++;
                continue;
            }
            if (fixed == null) {
                fixed = s.toCharArray();
            }
            fixed[i] = Utf8.REPLACEMENT;
        }
        return fixed == null ? s : new String(fixed);
    }

    /**
     * Decodes {@code ids} to text as Hugging Face does with {@code skip_special_tokens=False}:
     * the tokens' bytes concatenated (added tokens give their text), then UTF-8 with each
     * ill-formed subsequence replaced by U+FFFD.
     *
     * @throws IllegalArgumentException if an id has no token (Hugging Face skips those silently;
     *     a sampler that produces one, e.g. from the padding rows of the embedding, has a bug)
     */
    public String decode(int[] ids) {
        byte[] bytes = decodeBytes(ids);
        return Utf8.decodeLossy(bytes, 0, bytes.length);
    }

    /**
     * The bytes {@code ids} stand for, concatenated; may end inside a character or hold bytes
     * that are not UTF-8 at all.
     *
     * @throws IllegalArgumentException if an id has no token
     */
    public byte[] decodeBytes(int[] ids) {
        int length = 0;
        for (int id : ids) {
            requireToken(id);
            length += tokenOffsets[id + 1] - tokenOffsets[id];
        }
        byte[] out = new byte[length];
        int at = 0;
        for (int id : ids) {
            int from = tokenOffsets[id];
            int n = tokenOffsets[id + 1] - from;
            System.arraycopy(tokenBytes, from, out, at, n);
            at += n;
        }
        return out;
    }

    /** Number of bytes token {@code id} decodes to. */
    int tokenByteLength(int id) {
        requireToken(id);
        return tokenOffsets[id + 1] - tokenOffsets[id];
    }

    /** Copies the bytes of token {@code id} to {@code dest[at...]}. */
    void copyTokenBytes(int id, byte[] dest, int at) {
        int from = tokenOffsets[id];
        System.arraycopy(tokenBytes, from, dest, at, tokenOffsets[id + 1] - from);
    }

    private void requireToken(int id) {
        if (!hasToken(id)) {
            throw new IllegalArgumentException(
                    String.format(
                            "token id %d has no token (ids go from 0 to %d)", id, tokens.length - 1));
        }
    }

    /**
     * Number of ids that have a token, added tokens included (151,669 for the Qwen3 edition of
     * tokenizer.json, 151,646 for Qwen2's). A model's embedding usually has more rows; ids of
     * rows without a token cannot be decoded.
     */
    public int vocabSize() {
        return vocabSize;
    }

    /** Whether {@code id} has a token (any int is accepted). */
    public boolean hasToken(int id) {
        return id >= 0 && id < tokens.length && tokens[id] != null;
    }

    /**
     * The token string of {@code id} as the vocabulary stores it: byte-level for BPE tokens
     * ({@code "Ġhello"} for " hello"), the text for added tokens ({@code "<|im_end|>"}).
     *
     * @throws IllegalArgumentException if {@code id} has no token
     */
    public String token(int id) {
        requireToken(id);
        return tokens[id];
    }

    /**
     * The id of a token string as {@link #token} returns it, empty if there is none. A string
     * that is both an added token and a BPE token gives the added token's id, as Hugging Face's
     * {@code token_to_id} does.
     */
    public OptionalInt id(String token) {
        Integer id = ids.get(token);
        return id == null ? OptionalInt.empty() : OptionalInt.of(id);
    }

    /**
     * Whether {@code id} is a special token: tokenizer.json {@code special: true}, GGUF type 3
     * (control). False for ids without a token, for BPE tokens and for non-special added tokens
     * such as Qwen3's {@code <think>}.
     */
    public boolean isSpecial(int id) {
        return id >= 0 && id < special.length && special[id];
    }

    /** The id of {@code <|endoftext|>}, if the vocabulary has it. */
    public OptionalInt endOfTextId() {
        return id(ENDOFTEXT);
    }

    /** The id of {@code <|im_start|>}, if the vocabulary has it. */
    public OptionalInt imStartId() {
        return id(IM_START);
    }

    /** The id of {@code <|im_end|>}, if the vocabulary has it. */
    public OptionalInt imEndId() {
        return id(IM_END);
    }

    /** Number of BPE merges. */
    public int mergeCount() {
        return bpe.mergeCount();
    }

    @Override
    public String toString() {
        return "Qwen2Tokenizer[" + vocabSize + " tokens, " + bpe.mergeCount() + " merges]";
    }

    /** The token strings of {@code ids}, for messages and tests. */
    List<String> tokenStrings(int[] ids) {
        List<String> out = new ArrayList<>(ids.length);
        for (int id : ids) {
            out.add(token(id));
        }
        return out;
    }
}
