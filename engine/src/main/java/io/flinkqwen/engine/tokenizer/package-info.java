/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
/**
 * The Qwen2 tokenizer: byte-level BPE with exactly Hugging Face's ids ({@link
 * io.flinkqwen.engine.tokenizer.Qwen2Tokenizer}), built from a tokenizer.json or from a GGUF
 * file's vocabulary; incremental decoding of generated ids ({@link
 * io.flinkqwen.engine.tokenizer.StreamingDecoder}); and ChatML prompts ({@link
 * io.flinkqwen.engine.tokenizer.ChatMl}), the only place that inserts control tokens.
 */
package io.flinkqwen.engine.tokenizer;
