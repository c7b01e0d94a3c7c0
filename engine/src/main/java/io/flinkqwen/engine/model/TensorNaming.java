/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.engine.model;

/**
 * The one mapping table between our weight fields and the tensor names of each file format:
 * llama.cpp's GGUF names ({@code blk.N.attn_q.weight}) and Hugging Face's ({@code
 * model.layers.N.self_attn.q_proj.weight}).
 */
public enum TensorNaming {
    GGUF {
        @Override
        String name(Field field, int layer) {
            switch (field) {
                case EMBED:
                    return "token_embd.weight";
                case OUTPUT_NORM:
                    return "output_norm.weight";
                case OUTPUT:
                    return "output.weight";
                case ATTN_NORM:
                    return "blk." + layer + ".attn_norm.weight";
                case Q:
                    return "blk." + layer + ".attn_q.weight";
                case Q_BIAS:
                    return "blk." + layer + ".attn_q.bias";
                case K:
                    return "blk." + layer + ".attn_k.weight";
                case K_BIAS:
                    return "blk." + layer + ".attn_k.bias";
                case V:
                    return "blk." + layer + ".attn_v.weight";
                case V_BIAS:
                    return "blk." + layer + ".attn_v.bias";
                case O:
                    return "blk." + layer + ".attn_output.weight";
                case FFN_NORM:
                    return "blk." + layer + ".ffn_norm.weight";
                case GATE:
                    return "blk." + layer + ".ffn_gate.weight";
                case UP:
                    return "blk." + layer + ".ffn_up.weight";
                case DOWN:
                    return "blk." + layer + ".ffn_down.weight";
                default:
                    throw new AssertionError(field);
            }
        }
    },
    HF {
        @Override
        String name(Field field, int layer) {
            String l = "model.layers." + layer + ".";
            switch (field) {
                case EMBED:
                    return "model.embed_tokens.weight";
                case OUTPUT_NORM:
                    return "model.norm.weight";
                case OUTPUT:
                    return "lm_head.weight";
                case ATTN_NORM:
                    return l + "input_layernorm.weight";
                case Q:
                    return l + "self_attn.q_proj.weight";
                case Q_BIAS:
                    return l + "self_attn.q_proj.bias";
                case K:
                    return l + "self_attn.k_proj.weight";
                case K_BIAS:
                    return l + "self_attn.k_proj.bias";
                case V:
                    return l + "self_attn.v_proj.weight";
                case V_BIAS:
                    return l + "self_attn.v_proj.bias";
                case O:
                    return l + "self_attn.o_proj.weight";
                case FFN_NORM:
                    return l + "post_attention_layernorm.weight";
                case GATE:
                    return l + "mlp.gate_proj.weight";
                case UP:
                    return l + "mlp.up_proj.weight";
                case DOWN:
                    return l + "mlp.down_proj.weight";
                default:
                    throw new AssertionError(field);
            }
        }
    };

    /** The weights of a dense Qwen2 model, in the loader's order. */
    public enum Field {
        EMBED, ATTN_NORM, Q, Q_BIAS, K, K_BIAS, V, V_BIAS, O, FFN_NORM, GATE, UP, DOWN, OUTPUT_NORM, OUTPUT
    }

    /** The tensor name of {@code field} (of layer {@code layer} for per-layer fields). */
    abstract String name(Field field, int layer);

    public String tensorName(Field field, int layer) {
        return name(field, layer);
    }
}
