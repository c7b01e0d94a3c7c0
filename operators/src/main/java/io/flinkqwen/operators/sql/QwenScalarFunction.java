/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.operators.sql;

import io.flinkqwen.engine.tokenizer.ChatMl;
import java.util.List;
import java.util.Map;
import java.util.function.Supplier;
import org.apache.flink.annotation.PublicEvolving;
import org.apache.flink.table.functions.FunctionContext;
import org.apache.flink.table.functions.ScalarFunction;

/**
 * The synchronous Qwen2 SQL functions' base: {@code eval} blocks the task thread until the
 * model answers. Parallel instances in one JVM share one engine ({@link SharedEngines}), which
 * batches their concurrent calls; one instance has one call in flight. For many calls in flight
 * per instance use the {@code *Async} twin.
 *
 * <p>Errors: a SQL function has no side output, so a call with invalid input (an unknown
 * language, {@code max_tokens} below 1, a prompt longer than the model's context) answers NULL,
 * counted in the metric {@code invalidInputs} and logged with the function's name and the bad
 * value, and the query goes on; with {@code qwen.on-invalid-input = FAIL} it throws that message
 * instead and the job fails (or restarts, as its restart strategy says). A failed engine always
 * throws. NULL arguments give NULL.
 *
 * <p>Options: see {@link QwenFunctionOptions}. Greedy decoding, so the same argument gives the
 * same answer; constant folding is off, so the planner never runs the model at planning time.
 */
@PublicEvolving
public abstract class QwenScalarFunction extends ScalarFunction {

    private static final long serialVersionUID = 1L;

    final FunctionCore core;

    protected QwenScalarFunction(String sqlName, Map<String, String> options) {
        this.core = new FunctionCore(sqlName, options);
    }

    @Override
    public void open(FunctionContext context) throws Exception {
        core.open(context);
    }

    @Override
    public void close() throws Exception {
        core.close();
    }

    @Override
    public boolean supportsConstantFolding() {
        return false;
    }

    /** The answer to the conversation {@code prompt} builds (its argument errors carry the function's name). */
    protected String answer(Supplier<List<ChatMl.Message>> prompt, Integer maxTokens) {
        try {
            return core.answer(prompt.get(), core.sampling(maxTokens));
        } catch (IllegalArgumentException e) {
            return core.invalidInput(e);
        }
    }

    String systemPrompt() {
        return core.systemPrompt();
    }
}
