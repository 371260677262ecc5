"""The s3a connector for Spark: hadoop-aws matching the Hadoop inside the installed pyspark, and the
AWS SDK v2 modules it needs, resolved with mvn once and cached under RETAIN_CACHE_DIR.

Not the SDK's ``bundle`` jar that hadoop-aws declares: it holds every AWS service (686 MB for
2.35.4, and local mode copies each spark.jars file into the executor's directory at every start).
S3A reads, writes and authenticates with the s3, s3-transfer-manager, sts, apache-client and
netty-nio-client modules (13 MB with their dependencies), at the SDK version hadoop-aws was built
with (the generated POM inherits it from hadoop-project). Features that need other services, such
as client-side encryption with KMS, would need more modules.

``python -m retain.spark.jars`` prints the jars comma-separated, for ``spark-submit --jars``;
with ``--if-needed``, only when the settings' lake is on s3:// and Spark lacks them.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from urllib.parse import urlsplit

from retain.config import Settings
from retain.errors import RetainError
from retain.stack.jars import maven_lib

SDK_MODULES = ("s3", "s3-transfer-manager", "sts", "apache-client", "netty-nio-client")
# Spark ships these libraries itself, and its copies load first (spark.jars sit in a child class
# loader): a second, older copy would only cause mixed-version classes.
SPARK_PROVIDES = ("io.netty", "org.slf4j", "org.apache.httpcomponents", "commons-codec", "commons-logging")

_POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <!-- The parent defines aws-java-sdk-v2.version: the SDK hadoop-aws {hadoop} was built with. -->
  <parent>
    <groupId>org.apache.hadoop</groupId>
    <artifactId>hadoop-project</artifactId>
    <version>{hadoop}</version>
    <relativePath/>
  </parent>
  <groupId>dev.retain</groupId>
  <artifactId>s3a-runtime</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.hadoop</groupId>
      <artifactId>hadoop-aws</artifactId>
      <version>{hadoop}</version>
      <exclusions>
        <exclusion><groupId>software.amazon.awssdk</groupId><artifactId>bundle</artifactId></exclusion>
      </exclusions>
    </dependency>
{modules}
  </dependencies>
</project>
"""
_MODULE = ("    <dependency><groupId>software.amazon.awssdk</groupId><artifactId>{name}</artifactId>"
           "<version>${{aws-java-sdk-v2.version}}</version></dependency>")


class S3aUnavailable(RetainError):
    """Spark cannot read an s3:// lake: the s3a connector is missing or could not be resolved."""


def spark_jars_dir() -> Path:
    """The jars directory of the Spark that pyspark runs (SPARK_HOME's, or the pip package's)."""
    from pyspark.find_spark_home import _find_spark_home

    return Path(_find_spark_home()) / "jars"


def hadoop_version(jars_dir: Path | None = None) -> str:
    """The Hadoop version Spark bundles, read from its hadoop-client-api jar."""
    jars_dir = jars_dir or spark_jars_dir()
    for jar in sorted(jars_dir.glob("hadoop-client-api-*.jar")):
        match = re.fullmatch(r"hadoop-client-api-(\d+\.\d+\.\d+)\.jar", jar.name)
        if match:
            return match.group(1)
    raise S3aUnavailable(f"no hadoop-client-api-<version>.jar in {jars_dir}: cannot tell which hadoop-aws "
                         "matches this Spark (a Spark built without Hadoop needs its own s3a setup)")


def s3a_jars(cache_dir: Path, hadoop: str | None = None) -> list[Path]:
    """The jars to add to Spark for s3a:// (resolved with mvn on first use, then cached)."""
    hadoop = hadoop or hadoop_version()
    pom = _POM.format(hadoop=hadoop, modules="\n".join(_MODULE.format(name=name) for name in SDK_MODULES))
    lib = maven_lib(cache_dir / f"hadoop-aws-{hadoop}", pom, expect=f"hadoop-aws-{hadoop}.jar",
                    what=f"org.apache.hadoop:hadoop-aws:{hadoop} and the AWS SDK modules it needs",
                    exclude_groups=SPARK_PROVIDES, error=S3aUnavailable)
    return sorted(lib.glob("*.jar"))


def needs_s3a(settings: Settings) -> bool:
    """Whether Spark reads S3: the lake is on s3://. (The model store, even on S3, is read and
    written through boto3 on the driver, never by Spark.)"""
    return urlsplit(settings.lake_root).scheme == "s3"


def jars_for(settings: Settings) -> list[Path]:
    """The jars a Spark for these settings must start with: none for a local lake, none for a
    Spark that ships hadoop-aws itself (a hadoop-cloud build), else the s3a connector."""
    if not needs_s3a(settings) or any(spark_jars_dir().glob("hadoop-aws-*.jar")):
        return []
    return s3a_jars(settings.cache_dir)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        settings = Settings.from_env()
        jars = jars_for(settings) if "--if-needed" in argv else s3a_jars(settings.cache_dir)
    except RetainError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    print(",".join(str(jar) for jar in jars))
    return 0


if __name__ == "__main__":
    sys.exit(main())
