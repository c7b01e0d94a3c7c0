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
                case ROUTER:
                    return "blk." + layer + ".ffn_gate_inp.weight";
                case GATE_EXPS:
                    return "blk." + layer + ".ffn_gate_exps.weight";
                case UP_EXPS:
                    return "blk." + layer + ".ffn_up_exps.weight";
                case DOWN_EXPS:
                    return "blk." + layer + ".ffn_down_exps.weight";
                case GATE_SHEXP:
                    return "blk." + layer + ".ffn_gate_shexp.weight";
                case UP_SHEXP:
                    return "blk." + layer + ".ffn_up_shexp.weight";
                case DOWN_SHEXP:
                    return "blk." + layer + ".ffn_down_shexp.weight";
                case SHEXP_GATE:
                    return "blk." + layer + ".ffn_gate_inp_shexp.weight";
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
                case ROUTER:
                    return l + "mlp.gate.weight";
                case GATE_SHEXP:
                    return l + "mlp.shared_expert.gate_proj.weight";
                case UP_SHEXP:
                    return l + "mlp.shared_expert.up_proj.weight";
                case DOWN_SHEXP:
                    return l + "mlp.shared_expert.down_proj.weight";
                case SHEXP_GATE:
                    return l + "mlp.shared_expert_gate.weight";
                case GATE_EXPS:
                case UP_EXPS:
                case DOWN_EXPS:
                    throw new IllegalArgumentException(
                            "Hugging Face stores one tensor per expert: use expertName(" + field + ", layer, expert)");
                default:
                    throw new AssertionError(field);
            }
        }
    };

    /**
     * The weights of a Qwen2 model, in the loader's order; the MoE block's come last (new fields
     * go at the end: the test-model generator seeds each tensor by its field's ordinal).
     *
     * <p>MoE: {@code ROUTER} is GGUF {@code ffn_gate_inp} = HF {@code mlp.gate}; {@code
     * GATE_EXPS/UP_EXPS/DOWN_EXPS} are GGUF {@code ffn_*_exps} (all experts in one 3-D tensor
     * {@code [experts, rows, cols]}) = HF {@code mlp.experts.E.*_proj}; {@code *_SHEXP} are the
     * shared expert ({@code ffn_*_shexp} = {@code mlp.shared_expert.*_proj}); {@code SHEXP_GATE}
     * is GGUF {@code ffn_gate_inp_shexp} ({@code [hidden]}) = HF {@code mlp.shared_expert_gate}
     * ({@code [1, hidden]}).
     */
    public enum Field {
        EMBED, ATTN_NORM, Q, Q_BIAS, K, K_BIAS, V, V_BIAS, O, FFN_NORM, GATE, UP, DOWN, OUTPUT_NORM, OUTPUT,
        ROUTER, GATE_EXPS, UP_EXPS, DOWN_EXPS, GATE_SHEXP, UP_SHEXP, DOWN_SHEXP, SHEXP_GATE
    }

    /**
     * The HF tensor of routed expert {@code expert}'s {@code GATE_EXPS}, {@code UP_EXPS} or {@code
     * DOWN_EXPS} matrix ({@code model.layers.N.mlp.experts.E.gate_proj.weight}); for GGUF, where
     * all experts share one tensor, the merged tensor's name.
     */
    public String expertName(Field field, int layer, int expert) {
        if (this == GGUF) {
            return name(field, layer);
        }
        String p = "model.layers." + layer + ".mlp.experts." + expert + ".";
        switch (field) {
            case GATE_EXPS:
                return p + "gate_proj.weight";
            case UP_EXPS:
                return p + "up_proj.weight";
            case DOWN_EXPS:
                return p + "down_proj.weight";
            default:
                throw new IllegalArgumentException(field + " is not a routed-expert matrix");
        }
    }

    /** Whether a layer's routed experts are one 3-D tensor per matrix (GGUF) or one per expert. */
    public boolean mergedExperts() {
        return this == GGUF;
    }

    /** The tensor name of {@code field} (of layer {@code layer} for per-layer fields). */
    abstract String name(Field field, int layer);

    public String tensorName(Field field, int layer) {
        return name(field, layer);
    }
}
