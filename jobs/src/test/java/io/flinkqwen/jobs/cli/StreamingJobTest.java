/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.jobs.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.flinkqwen.operators.inference.InferenceSettings;
import io.flinkqwen.operators.inference.QwenInference;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.Test;

/** The engine options the streaming commands share, as they reach the operator's settings. */
class StreamingJobTest {

    static InferenceSettings engine(String... argv) {
        Args a = Args.parse("translate", List.of(argv), StreamingJob.ENGINE_OPTIONS, Set.of());
        QwenInference.Builder b = QwenInference.builder().model("m.gguf");
        StreamingJob.engine("translate", a, b);
        return b.build().settings();
    }

    @Test
    void kvBudgetMibSetsTheOperatorsKvBudget() {
        assertEquals(3L << 20, engine("--kv-budget-mib", "3").kvBudgetBytes());
        assertEquals(0, engine("--kv-budget-mib", "0").kvBudgetBytes()); // one request at a time, no idle cache
        assertEquals(InferenceSettings.DEFAULT_KV_BUDGET_BYTES, engine().kvBudgetBytes());
        assertEquals(2, engine("--threads", "2").threads());
        String m = assertThrows(Args.UsageException.class, () -> engine("--kv-budget-mib", "-1")).getMessage();
        assertTrue(m.contains("translate: --kv-budget-mib must be >= 0, got -1"), m);
    }
}
