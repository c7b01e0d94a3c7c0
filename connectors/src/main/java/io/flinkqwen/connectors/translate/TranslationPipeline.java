/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.connectors.translate;

import io.flinkqwen.connectors.format.DeadLetter;
import io.flinkqwen.connectors.format.Decoding;
import io.flinkqwen.operators.inference.InferenceEvent;
import io.flinkqwen.operators.inference.QwenInference;
import io.flinkqwen.operators.inference.RejectedEvent;
import io.flinkqwen.operators.inference.Task;
import io.flinkqwen.connectors.format.TranslationRequest;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import org.apache.flink.annotation.PublicEvolving;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.datastream.SingleOutputStreamOperator;
import org.apache.flink.streaming.api.functions.ProcessFunction;
import org.apache.flink.types.Either;
import org.apache.flink.util.Collector;
import org.apache.flink.util.OutputTag;

/**
 * Decoded translation requests to translations, with every record that is not translated as a
 * dead letter: malformed input, a target language this job does not serve, and what the
 * inference operator rejects (empty or too long text, timeouts).
 *
 * <p>The operator's task, and so its system prompt, is fixed per operator: the pipeline runs one
 * {@link QwenInference} per served language, each keyed by the request's key, so the segments of
 * one document into one language share a context (consistent terminology). Each operator loads
 * the model: serve few languages per job.
 *
 * <p>{@code source_lang} is carried but not given to the model: Qwen2 recognises the source.
 */
@PublicEvolving
public final class TranslationPipeline {

    private TranslationPipeline() {}

    /**
     * What {@link #apply} returns.
     *
     * @param results one per translated request
     * @param deadLetters one per request not translated, with the reason
     */
    public record Result(DataStream<TranslationResult> results, DataStream<DeadLetter> deadLetters) {}

    /**
     * @param decoded what a source with {@code TranslationRequestFormat} emits
     * @param languages the ISO 639-1 codes this job translates into (see {@link Languages})
     * @param inference the operator settings (model, batch, context); its task and name are set
     *     here per language. Used on the client only, never serialized
     */
    public static Result apply(DataStream<Either<DeadLetter, TranslationRequest>> decoded, Set<String> languages,
            QwenInference.Builder inference) {
        if (languages.isEmpty()) {
            throw new IllegalArgumentException("no target language: pass at least one ISO 639-1 code (--to)");
        }
        Map<String, OutputTag<InferenceEvent>> tags = new LinkedHashMap<>();
        for (String code : new TreeSet<>(languages)) {
            tags.put(Languages.require(code, "the served languages"),
                    new OutputTag<>("translate-" + code, TypeInformation.of(InferenceEvent.class)));
        }
        SingleOutputStreamOperator<TranslationRequest> requests =
                Decoding.split(decoded, TypeInformation.of(TranslationRequest.class));
        SingleOutputStreamOperator<InferenceEvent> routed = requests
                .process(new Route(tags), TypeInformation.of(InferenceEvent.class))
                .name("route-by-target-language");

        List<DataStream<TranslationResult>> results = new ArrayList<>();
        DataStream<DeadLetter> dead = requests.getSideOutput(Decoding.DEAD_LETTERS)
                .union(routed.getSideOutput(Decoding.DEAD_LETTERS));
        for (Map.Entry<String, OutputTag<InferenceEvent>> e : tags.entrySet()) {
            String code = e.getKey();
            QwenInference.Result out = inference
                    .task(Task.translate(code))
                    .name("translate-" + code)
                    .build()
                    .apply(routed.getSideOutput(e.getValue()));
            // a stable id per language, so that savepoints restore the right operator's state
            out.results().uid("translate-" + code);
            results.add(out.results()
                    .map(r -> new TranslationResult(r, code))
                    .returns(TypeInformation.of(TranslationResult.class))
                    .name("tag-" + code));
            dead = dead.union(out.rejected()
                    .map(TranslationPipeline::deadLetter)
                    .returns(TypeInformation.of(DeadLetter.class))
                    .name("rejected-" + code));
        }
        DataStream<TranslationResult> all = results.get(0);
        for (int i = 1; i < results.size(); i++) {
            all = all.union(results.get(i));
        }
        return new Result(all, dead);
    }

    static DeadLetter deadLetter(RejectedEvent r) {
        return DeadLetter.ofText("request " + r.event().requestId() + " (key " + r.event().key() + ")", r.reason(),
                r.event().text());
    }

    /** Each request to its language's side output, or a dead letter when the job does not serve it. */
    private static final class Route extends ProcessFunction<TranslationRequest, InferenceEvent> {
        private static final long serialVersionUID = 1L;
        private final Map<String, OutputTag<InferenceEvent>> tags;

        Route(Map<String, OutputTag<InferenceEvent>> tags) {
            this.tags = new LinkedHashMap<>(tags);
        }

        @Override
        public void processElement(TranslationRequest r, Context ctx, Collector<InferenceEvent> out) {
            OutputTag<InferenceEvent> tag = tags.get(r.targetLang());
            if (tag == null) {
                ctx.output(Decoding.DEAD_LETTERS, DeadLetter.ofText("request " + r.id() + " (key " + r.key() + ")",
                        "target_lang '" + r.targetLang() + "' is not served by this job (it translates into "
                                + String.join(", ", tags.keySet()) + ")", r.text()));
                return;
            }
            Long ts = ctx.timestamp();
            ctx.output(tag, new InferenceEvent(r.key(), r.id(), r.text(), ts == null ? 0L : ts));
        }
    }
}
