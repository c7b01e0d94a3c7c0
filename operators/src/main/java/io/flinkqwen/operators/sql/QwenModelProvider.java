/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.operators.sql;

import io.flinkqwen.engine.generate.SamplingParams;
import io.flinkqwen.engine.tokenizer.ChatMl;
import java.io.Serializable;
import java.util.Collection;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import org.apache.flink.annotation.Internal;
import org.apache.flink.table.data.GenericRowData;
import org.apache.flink.table.data.RowData;
import org.apache.flink.table.data.StringData;
import org.apache.flink.table.functions.AsyncPredictFunction;
import org.apache.flink.table.functions.FunctionContext;
import org.apache.flink.table.functions.PredictFunction;
import org.apache.flink.table.ml.AsyncPredictRuntimeProvider;
import org.apache.flink.table.ml.ModelProvider;
import org.apache.flink.table.ml.PredictRuntimeProvider;

/**
 * What {@link QwenModelProviderFactory} returns: the synchronous and the asynchronous predict
 * function over one {@link Spec}. Each row's single string column is the prompt; the answer is
 * the single output column. A NULL input gives a NULL answer. A row that cannot be answered (a
 * prompt longer than the model's context, a failed engine) fails the job with the model's name
 * in the message: ML_PREDICT has no side output.
 */
@Internal
public final class QwenModelProvider implements PredictRuntimeProvider, AsyncPredictRuntimeProvider {

    /** A model's resolved options. */
    record Spec(String name, EngineSpec engine, QwenModelOptions.ModelTask task, String targetLang,
            String systemPrompt, int maxTokens, double temperature, long seed, OnInvalidInput onInvalidInput)
            implements Serializable {

        List<ChatMl.Message> conversation(String input) {
            return switch (task) {
                case GENERATE -> SqlPrompts.generate(systemPrompt, input);
                case SUMMARIZE -> SqlPrompts.summarize(input);
                case TRANSLATE -> SqlPrompts.translate(input, targetLang);
            };
        }
    }

    private final Spec spec;

    QwenModelProvider(Spec spec) {
        this.spec = spec;
    }

    Spec spec() {
        return spec;
    }

    @Override
    public PredictFunction createPredictFunction(ModelProvider.Context context) {
        return new Sync(spec);
    }

    @Override
    public AsyncPredictFunction createAsyncPredictFunction(ModelProvider.Context context) {
        return new Async(spec);
    }

    @Override
    public ModelProvider copy() {
        return new QwenModelProvider(spec);
    }

    private static QwenCalls openCalls(Spec spec, FunctionContext context) {
        String subtask;
        try {
            subtask = String.valueOf(context.getTaskInfo().getIndexOfThisSubtask());
        } catch (RuntimeException e) {
            subtask = "local";
        }
        return new QwenCalls("model " + spec.name(), spec.engine(), spec.name() + "/" + subtask + "/"
                + Integer.toHexString(System.identityHashCode(context)), context.getMetricGroup(), spec.onInvalidInput());
    }

    private static Collection<RowData> row(String answer) {
        return List.of(GenericRowData.of(answer == null ? null : StringData.fromString(answer)));
    }

    /** One row at a time on the task thread; the engine still batches the rows of all instances. */
    public static final class Sync extends PredictFunction {
        private static final long serialVersionUID = 1L;
        private final Spec spec;
        private transient QwenCalls calls;
        private transient SamplingParams params;

        Sync(Spec spec) {
            this.spec = spec;
        }

        @Override
        public void open(FunctionContext context) throws Exception {
            calls = openCalls(spec, context);
            params = calls.sampling(spec.temperature(), spec.seed(), spec.maxTokens());
        }

        @Override
        public Collection<RowData> predict(RowData input) {
            if (input.isNullAt(0)) {
                return row(null);
            }
            return row(calls.answerBlocking(spec.conversation(input.getString(0).toString()), params));
        }

        @Override
        public void close() throws Exception {
            if (calls != null) {
                calls.close();
            }
        }
    }

    /** Many rows in flight ({@code ML_PREDICT}'s async options bound them), batched by the engine. */
    public static final class Async extends AsyncPredictFunction {
        private static final long serialVersionUID = 1L;
        private final Spec spec;
        private transient QwenCalls calls;
        private transient SamplingParams params;

        Async(Spec spec) {
            this.spec = spec;
        }

        @Override
        public void open(FunctionContext context) throws Exception {
            calls = openCalls(spec, context);
            params = calls.sampling(spec.temperature(), spec.seed(), spec.maxTokens());
        }

        @Override
        public CompletableFuture<Collection<RowData>> asyncPredict(RowData input) {
            if (input.isNullAt(0)) {
                return CompletableFuture.completedFuture(row(null));
            }
            return calls.answer(spec.conversation(input.getString(0).toString()), params)
                    .handle((answer, failure) -> {
                        if (failure != null) {
                            throw failure instanceof CompletionException ce ? ce : new CompletionException(failure);
                        }
                        return row(answer);
                    });
        }

        @Override
        public void close() throws Exception {
            if (calls != null) {
                calls.close();
            }
        }
    }
}
