/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.jobs.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.jar.JarFile;
import java.util.zip.ZipEntry;
import org.junit.jupiter.api.Test;

/**
 * The jar for {@code flink run} (target/flink-qwen-jobs-flink.jar, written by the shade plugin at
 * {@code package}; this test runs after it, in {@code integration-test}): our code and what a
 * Flink cluster lacks, none of what it has, and service files merged.
 */
class ShadedJarPackagingTest {

    @Test
    void flinkJarHoldsTheJobsAndTheKafkaConnectorButNotFlink() throws Exception {
        Path jar = Path.of("target", "flink-qwen-jobs-flink.jar");
        assertTrue(Files.isRegularFile(jar), jar + " is missing: run mvn package first");
        try (JarFile j = new JarFile(jar.toFile())) {
            assertEquals("io.flinkqwen.jobs.cli.Main", j.getManifest().getMainAttributes().getValue("Main-Class"));
            for (String present : new String[] {
                "io/flinkqwen/jobs/cli/Main.class",
                "io/flinkqwen/jobs/cli/TranslateCommand.class",
                "io/flinkqwen/connectors/kafka/KafkaIo.class",
                "io/flinkqwen/operators/inference/QwenInference.class",
                "io/flinkqwen/engine/LoadedModel.class",
                "io/flinkqwen/kernels/KernelPool.class",
                "org/apache/flink/connector/kafka/sink/KafkaSink.class",
                "org/apache/kafka/clients/producer/KafkaProducer.class",
                "org/apache/arrow/vector/VectorSchemaRoot.class",
                "com/fasterxml/jackson/databind/ObjectMapper.class",
                // what the SQL client needs from the jar (README, "Flink SQL"): CREATE FUNCTION ... AS
                // these classes, the model provider (service entry below), the Kafka table factory
                "io/flinkqwen/operators/sql/QwenGenerate.class",
                "io/flinkqwen/operators/sql/QwenGenerateAsync.class",
                "io/flinkqwen/operators/sql/QwenSummarize.class",
                "io/flinkqwen/operators/sql/QwenSummarizeAsync.class",
                "io/flinkqwen/operators/sql/QwenTranslate.class",
                "io/flinkqwen/operators/sql/QwenTranslateAsync.class",
                "io/flinkqwen/operators/sql/QwenModelProviderFactory.class",
                "org/apache/flink/streaming/connectors/kafka/table/KafkaDynamicTableFactory.class",
            }) {
                assertNotNull(j.getEntry(present), present + " missing from " + jar);
            }
            for (String absent : new String[] {
                "org/apache/flink/streaming/api/environment/StreamExecutionEnvironment.class",
                "org/apache/flink/runtime/minicluster/MiniCluster.class",
                "org/apache/flink/client/program/PackagedProgram.class",
                "org/apache/flink/connector/base/DeliveryGuarantee.class",
                "org/apache/flink/connector/file/src/FileSource.class",
                // the example scripts' other table connectors and format: in every Flink's lib/
                "org/apache/flink/connector/file/table/FileSystemTableFactory.class",
                "org/apache/flink/connector/datagen/table/DataGenTableSourceFactory.class",
                "org/apache/flink/formats/json/JsonFormatFactory.class",
                "org/apache/flink/table/api/TableEnvironment.class",
                "org/apache/logging/log4j/core/Logger.class",
                "org/slf4j/Logger.class",
                "log4j2.properties",
            }) {
                assertTrue(j.getEntry(absent) == null, absent + " must not be in " + jar + " (the cluster has it)");
            }
            // the Kafka connector's table factory survives the merge of service files ...
            ZipEntry factories = j.getEntry("META-INF/services/org.apache.flink.table.factories.Factory");
            assertNotNull(factories, "service file of the Kafka table factories missing");
            try (InputStream s = j.getInputStream(factories)) {
                String text = new String(s.readAllBytes(), StandardCharsets.UTF_8);
                assertTrue(text.contains("org.apache.flink.streaming.connectors.kafka.table.KafkaDynamicTableFactory"), text);
                // ... and so does ours: CREATE MODEL ... WITH ('provider' = 'qwen2') from the SQL client
                assertTrue(text.contains("io.flinkqwen.operators.sql.QwenModelProviderFactory"), text);
                assertFalse(text.isBlank());
            }
        }
    }
}
