/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.operators.sql;

import java.util.List;
import java.util.Set;
import org.apache.flink.annotation.PublicEvolving;
import org.apache.flink.configuration.ConfigOption;
import org.apache.flink.configuration.ReadableConfig;
import org.apache.flink.table.api.ValidationException;
import org.apache.flink.table.catalog.Column;
import org.apache.flink.table.catalog.ResolvedCatalogModel;
import org.apache.flink.table.catalog.ResolvedSchema;
import org.apache.flink.table.factories.FactoryUtil;
import org.apache.flink.table.factories.ModelProviderFactory;
import org.apache.flink.table.ml.ModelProvider;
import org.apache.flink.table.types.logical.LogicalTypeFamily;

/**
 * The {@code qwen2} model provider: Qwen2 in-process behind {@code ML_PREDICT}.
 *
 * <pre>{@code
 * CREATE MODEL m INPUT (prompt STRING) OUTPUT (response STRING)
 *   WITH ('provider' = 'qwen2', 'model' = '/models/qwen2-0_5b-instruct-q8_0.gguf', 'max-tokens' = '64');
 * SELECT * FROM ML_PREDICT(TABLE t, MODEL m, DESCRIPTOR(prompt));
 * }</pre>
 *
 * The model takes one string column and gives one string column; options are {@link
 * QwenModelOptions}. Both a synchronous and an asynchronous predict function are provided (Flink
 * picks the async one unless {@code ML_PREDICT(..., MAP['async', 'false'])}); either way the
 * instances of a JVM share one engine, which batches their rows. Listed in {@code
 * META-INF/services/org.apache.flink.table.factories.Factory}.
 */
@PublicEvolving
public final class QwenModelProviderFactory implements ModelProviderFactory {

    public static final String IDENTIFIER = "qwen2";

    @Override
    public String factoryIdentifier() {
        return IDENTIFIER;
    }

    @Override
    public Set<ConfigOption<?>> requiredOptions() {
        return Set.of(QwenModelOptions.MODEL);
    }

    @Override
    public Set<ConfigOption<?>> optionalOptions() {
        return Set.of(QwenModelOptions.TASK, QwenModelOptions.TARGET_LANG, QwenModelOptions.SYSTEM_PROMPT,
                QwenModelOptions.MAX_TOKENS, QwenModelOptions.TEMPERATURE, QwenModelOptions.SEED,
                QwenModelOptions.THREADS, QwenModelOptions.MAX_SEQUENCES, QwenModelOptions.CAPACITY,
                QwenModelOptions.KV_BUDGET, QwenModelOptions.DEVICE, QwenModelOptions.ON_INVALID_INPUT,
                QwenModelOptions.KV_TYPE);
    }

    @Override
    public ModelProvider createModelProvider(Context context) {
        FactoryUtil.ModelProviderFactoryHelper helper = FactoryUtil.createModelProviderFactoryHelper(this, context);
        helper.validate();
        String name = context.getObjectIdentifier().asSummaryString();
        ResolvedCatalogModel model = context.getCatalogModel();
        oneStringColumn(name, "INPUT", model.getResolvedInputSchema());
        oneStringColumn(name, "OUTPUT", model.getResolvedOutputSchema());
        return new QwenModelProvider(spec(name, helper.getOptions()));
    }

    static QwenModelProvider.Spec spec(String name, ReadableConfig o) {
        QwenModelOptions.ModelTask task = o.get(QwenModelOptions.TASK);
        String targetLang = o.getOptional(QwenModelOptions.TARGET_LANG).orElse(null);
        try {
            if (task == QwenModelOptions.ModelTask.TRANSLATE) {
                if (targetLang == null) {
                    throw new IllegalArgumentException("task 'translate' needs the option 'target-lang' (e.g. 'de')");
                }
                targetLang = SqlPrompts.languageCode(targetLang);
            }
            int maxTokens = o.get(QwenModelOptions.MAX_TOKENS);
            if (maxTokens < 1) {
                throw new IllegalArgumentException("'max-tokens' must be >= 1, got " + maxTokens);
            }
            double temperature = o.get(QwenModelOptions.TEMPERATURE);
            if (!(temperature >= 0) || Double.isInfinite(temperature)) {
                throw new IllegalArgumentException("'temperature' must be >= 0 and finite, got " + temperature);
            }
            EngineSpec engine = new EngineSpec(o.get(QwenModelOptions.MODEL), o.get(QwenModelOptions.THREADS),
                    o.get(QwenModelOptions.MAX_SEQUENCES), o.get(QwenModelOptions.CAPACITY),
                    o.get(QwenModelOptions.KV_BUDGET).getBytes(), o.getOptional(QwenModelOptions.DEVICE)
                            .orElse(System.getProperty(io.flinkqwen.kernels.backend.KernelBackends.DEVICE_PROPERTY, "auto")),
                    QwenFunctionOptions.kvFormat(o.getOptional(QwenModelOptions.KV_TYPE).orElse(null),
                            "'" + QwenModelOptions.KV_TYPE.key() + "'"));
            return new QwenModelProvider.Spec(name, engine, task, targetLang, o.get(QwenModelOptions.SYSTEM_PROMPT),
                    maxTokens, temperature, o.get(QwenModelOptions.SEED), o.get(QwenModelOptions.ON_INVALID_INPUT));
        } catch (IllegalArgumentException e) {
            throw new ValidationException("model " + name + " (provider 'qwen2'): " + e.getMessage(), e);
        }
    }

    private static void oneStringColumn(String name, String side, ResolvedSchema schema) {
        List<Column> columns = schema.getColumns();
        if (columns.size() != 1
                || !columns.get(0).getDataType().getLogicalType().is(LogicalTypeFamily.CHARACTER_STRING)) {
            throw new ValidationException("model " + name + " (provider 'qwen2'): the " + side
                    + " schema must be one STRING column, got " + schema.getColumns());
        }
    }
}
