// The Android library: the generated Kotlin bindings, the Flow wrapper (src/main/kotlin), the Android helpers
// (src/android/kotlin: NsdDiscovery, MulticastLockHolder, AndroidLog) and libmultipeer_ffi.so for every ABI
// (src/main/jniLibs, built by cargo ndk). Published as the AAR org.multipeer:multipeer.
import org.jetbrains.kotlin.gradle.dsl.JvmTarget

plugins {
    id("com.android.library")
    id("org.jetbrains.kotlin.android")
    `maven-publish`
}

/** The repository root: the Cargo workspace, whose target/ holds the generated bindings. */
val repoRoot: File = layout.projectDirectory.asFile.resolve("../..").canonicalFile
val jniLibsDir: File = layout.projectDirectory.dir("src/main/jniLibs").asFile
val bindingsDir: File = repoRoot.resolve("target/bindings/kotlin")
val skipCargo: Boolean = providers.gradleProperty("multipeer.skipCargo").orNull == "true"
val multipeerVersion: String = providers.gradleProperty("multipeer.version").getOrElse("0.0.0-SNAPSHOT")

/** The ABIs the native library is built for, and the oldest Android it runs on. */
val abis = listOf("arm64-v8a", "armeabi-v7a", "x86_64", "x86")
val minSdkLevel = 24

android {
    namespace = "org.multipeer"
    compileSdk = 35

    defaultConfig {
        minSdk = minSdkLevel
        consumerProguardFiles("consumer-rules.pro")
        testInstrumentationRunner = "androidx.test.runner.AndroidJUnitRunner"
    }

    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }

    sourceSets {
        getByName("main") {
            // src/main/kotlin holds only plain-JVM code: the JVM test suite compiles it without the Android SDK.
            // Code that uses Android APIs lives in src/android/kotlin.
            kotlin.srcDir("src/android/kotlin")
            // The bindings are compiled from where the build regenerates them; they are never copied or committed.
            kotlin.srcDir(bindingsDir)
            // src/main/jniLibs (the default) receives the libraries built by buildNativeLibraries below.
        }
    }

    publishing {
        singleVariant("release") {
            withSourcesJar()
        }
    }
}

kotlin {
    compilerOptions {
        jvmTarget.set(JvmTarget.JVM_17)
    }
}

dependencies {
    // The generated bindings call the native library through JNA; its AAR carries libjnidispatch.so per ABI.
    // 5.17.0 is the first JNA release whose libjnidispatch.so loads on devices with 16 KB memory pages (Android 15
    // and later may use them; Google Play requires 16 KB support from apps targeting Android 15+): 5.16.0 linked it
    // with max-page-size=16384 only (java-native-access/jna#1642) and it still crashed there (jna#1647); 5.17.0
    // adds common-page-size=16384 (jna#1654). Apps may resolve any later version.
    implementation("net.java.dev.jna:jna:5.17.0@aar")
    // The public API exposes Flow, StateFlow and suspend functions.
    api("org.jetbrains.kotlinx:kotlinx-coroutines-android:1.9.0")
    implementation("androidx.annotation:annotation:1.9.1")

    androidTestImplementation("androidx.test:runner:1.6.2")
    androidTestImplementation("androidx.test.ext:junit:1.2.1")
    androidTestImplementation("junit:junit:4.13.2")
}

// ---- Native build ----
//
// Regenerates the bindings, then cross-compiles the library for every ABI. Needs Rust (rustup, with the four
// Android targets), cargo-ndk and the Android NDK (ANDROID_NDK_HOME, or an NDK under the SDK). Both tasks declare
// what they read and write, so Gradle skips them while no Rust source, manifest or lock file changed and their
// outputs are still there.

/** What the library and its bindings are built from. */
val rustSources: FileCollection = files(
    repoRoot.resolve("Cargo.toml"),
    repoRoot.resolve("Cargo.lock"),
    repoRoot.resolve(".cargo/config.toml"),
    fileTree(repoRoot.resolve("core")) {
        include("Cargo.toml", "build.rs", "src/**", "ffi/Cargo.toml", "ffi/build.rs", "ffi/uniffi.toml", "ffi/src/**")
    },
    // Patched dependencies built from the workspace.
    fileTree(repoRoot.resolve("third_party")) {
        exclude("**/target/**")
    },
)

val generateBindings by tasks.registering(Exec::class) {
    group = "multipeer"
    description = "Builds the host library and regenerates the Kotlin bindings into target/bindings/kotlin."
    workingDir = repoRoot
    commandLine("cargo", "xtask", "bindings", "--release")
    inputs.files(rustSources)
        .withPropertyName("rustSources")
        .withPathSensitivity(PathSensitivity.RELATIVE)
    inputs.files(fileTree(repoRoot.resolve("xtask")) { include("Cargo.toml", "src/**") })
        .withPropertyName("xtaskSources")
        .withPathSensitivity(PathSensitivity.RELATIVE)
    outputs.dir(bindingsDir).withPropertyName("bindings")
}

val buildNativeLibraries by tasks.registering(Exec::class) {
    group = "multipeer"
    description = "Cross-compiles libmultipeer_ffi.so for ${abis.joinToString()} into src/main/jniLibs."
    workingDir = repoRoot
    mustRunAfter(generateBindings)
    // Android 15+ devices may use 16 KB memory pages; NDK r28 and later align for them by default, and this flag
    // does it with older NDKs too.
    val pageSize = "-C link-arg=-Wl,-z,max-page-size=16384"
    val rustFlags = listOfNotNull(
        providers.environmentVariable("RUSTFLAGS").orNull?.takeIf { it.isNotBlank() },
        pageSize,
    ).joinToString(" ")
    environment("RUSTFLAGS", rustFlags)
    commandLine(
        listOf("cargo", "ndk") +
            abis.flatMap { listOf("-t", it) } +
            listOf("--platform", "$minSdkLevel", "-o", jniLibsDir.absolutePath, "build", "-p", "multipeer-ffi", "--release"),
    )
    inputs.files(rustSources)
        .withPropertyName("rustSources")
        .withPathSensitivity(PathSensitivity.RELATIVE)
    inputs.property("abis", abis)
    inputs.property("platform", minSdkLevel)
    inputs.property("rustFlags", rustFlags)
    inputs.property("ndk", providers.environmentVariable("ANDROID_NDK_HOME").orElse(""))
    outputs.dir(jniLibsDir).withPropertyName("jniLibs")
}

if (!skipCargo) {
    tasks.named("preBuild") {
        dependsOn(generateBindings, buildNativeLibraries)
    }
    // The publication's sources jar reads the generated bindings too, without compiling them.
    tasks.matching { it.name.startsWith("source") && it.name.endsWith("Jar") }.configureEach {
        dependsOn(generateBindings)
    }
}

// ---- Publishing ----
//
// ./gradlew :multipeer:publishToMavenLocal, or :multipeer:publish for the repository below (build/repo), which a
// release copies to its Maven repository. The POM lists JNA and kotlinx-coroutines as dependencies.

publishing {
    publications {
        register<MavenPublication>("release") {
            groupId = "org.multipeer"
            artifactId = "multipeer"
            version = multipeerVersion
            afterEvaluate {
                from(components["release"])
            }
            pom {
                name.set("multipeer")
                description.set(
                    "Find apps of the same kind on the local network and talk to them: encrypted QUIC sessions of " +
                        "up to 8 peers, found with mDNS / DNS-SD.",
                )
                url.set("https://github.com/multipeer-rs/multipeer")
                licenses {
                    license {
                        name.set("MIT")
                        url.set("https://opensource.org/licenses/MIT")
                    }
                    license {
                        name.set("Apache-2.0")
                        url.set("https://www.apache.org/licenses/LICENSE-2.0")
                    }
                }
            }
        }
    }
    repositories {
        maven {
            name = "build"
            url = uri(layout.buildDirectory.dir("repo"))
        }
    }
}
