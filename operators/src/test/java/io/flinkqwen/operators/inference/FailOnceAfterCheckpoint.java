/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.operators.inference;

import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import org.apache.flink.api.common.functions.MapFunction;
import org.apache.flink.api.common.state.CheckpointListener;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;

/**
 * The failure the job ITCases inject: passes results on, and throws once, on the first result
 * after a checkpoint completed and {@code after} results passed, so that the restore has
 * answered keys, waiting events and keys not seen yet. Its counters are static (the MiniCluster
 * runs in the test's JVM); {@link #checkpointedEnv} resets them for each job.
 */
final class FailOnceAfterCheckpoint implements MapFunction<InferenceResult, InferenceResult>, CheckpointListener {

    private static final AtomicBoolean checkpointDone = new AtomicBoolean();
    private static final AtomicBoolean failed = new AtomicBoolean();
    private static final AtomicInteger passed = new AtomicInteger();

    private final boolean inject;
    private final int after;

    /** @param inject false: pass everything on (the failure-free run) */
    FailOnceAfterCheckpoint(boolean inject, int after) {
        this.inject = inject;
        this.after = after;
    }

    /**
     * A parallelism-1 environment with checkpoints every 200 ms and up to 3 restarts 100 ms
     * apart; resets the counters.
     */
    static StreamExecutionEnvironment checkpointedEnv() {
        checkpointDone.set(false);
        failed.set(false);
        passed.set(0);
        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment();
        env.setParallelism(1);
        env.enableCheckpointing(200);
        Configuration restart = new Configuration();
        restart.setString("restart-strategy.type", "fixed-delay");
        restart.setString("restart-strategy.fixed-delay.attempts", "3");
        restart.setString("restart-strategy.fixed-delay.delay", "100 ms");
        env.configure(restart);
        return env;
    }

    /** Whether the failure was thrown in the last job. */
    static boolean failed() {
        return failed.get();
    }

    /** Results passed on in the last job, across restarts. */
    static int passed() {
        return passed.get();
    }

    @Override
    public InferenceResult map(InferenceResult r) {
        if (inject && checkpointDone.get() && passed.get() >= after && failed.compareAndSet(false, true)) {
            throw new IllegalStateException("injected failure at " + r.requestId());
        }
        passed.incrementAndGet();
        return r;
    }

    @Override
    public void notifyCheckpointComplete(long checkpointId) {
        checkpointDone.set(true);
    }
}
