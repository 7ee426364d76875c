// The Android library: the generated Kotlin bindings, the Flow wrapper (src/main/kotlin), the Android discovery
// helpers (src/android/kotlin) and libmultipeer_ffi.so for every ABI (src/main/jniLibs, built by cargo ndk).
import org.jetbrains.kotlin.gradle.dsl.JvmTarget

plugins {
    id("com.android.library")
    id("org.jetbrains.kotlin.android")
}

/** The repository root: the Cargo workspace, whose target/ holds the generated bindings. */
val repoRoot: File = layout.projectDirectory.asFile.resolve("../..").canonicalFile
val jniLibsDir: File = layout.projectDirectory.dir("src/main/jniLibs").asFile
val skipCargo: Boolean = providers.gradleProperty("multipeer.skipCargo").orNull == "true"

android {
    namespace = "org.multipeer"
    compileSdk = 35

    defaultConfig {
        minSdk = 24
        consumerProguardFiles("consumer-rules.pro")
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
            kotlin.srcDir(repoRoot.resolve("target/bindings/kotlin"))
            // src/main/jniLibs (the default) receives the libraries built by buildNativeLibraries below.
        }
    }
}

kotlin {
    compilerOptions {
        jvmTarget.set(JvmTarget.JVM_17)
    }
}

dependencies {
    // The generated bindings call the native library through JNA; the AAR carries libjnidispatch.so per ABI.
    implementation("net.java.dev.jna:jna:5.14.0@aar")
    // The public API exposes Flow and suspend functions.
    api("org.jetbrains.kotlinx:kotlinx-coroutines-android:1.9.0")
    implementation("androidx.annotation:annotation:1.9.1")
}

// Native build: regenerate the bindings, then cross-compile the library for every ABI. Needs Rust (rustup, with
// the four Android targets), cargo-ndk and the Android NDK (ANDROID_NDK_HOME, or an NDK under the SDK).
val generateBindings by tasks.registering(Exec::class) {
    group = "multipeer"
    description = "Builds the host library and regenerates the Kotlin bindings into target/bindings/kotlin."
    workingDir = repoRoot
    commandLine("cargo", "xtask", "bindings", "--release")
}

val buildNativeLibraries by tasks.registering(Exec::class) {
    group = "multipeer"
    description = "Cross-compiles libmultipeer_ffi.so for arm64-v8a, armeabi-v7a, x86_64 and x86 into src/main/jniLibs."
    workingDir = repoRoot
    mustRunAfter(generateBindings)
    // Android 15+ devices may use 16 KB memory pages; NDK r28 and later align for them by default, and this flag
    // does it with older NDKs too.
    val pageSize = "-C link-arg=-Wl,-z,max-page-size=16384"
    val rustFlags = providers.environmentVariable("RUSTFLAGS").orNull
    environment("RUSTFLAGS", listOfNotNull(rustFlags?.takeIf { it.isNotBlank() }, pageSize).joinToString(" "))
    commandLine(
        "cargo", "ndk",
        "-t", "arm64-v8a", "-t", "armeabi-v7a", "-t", "x86_64", "-t", "x86",
        "--platform", "24",
        "-o", jniLibsDir.absolutePath,
        "build", "-p", "multipeer-ffi", "--release",
    )
}

if (!skipCargo) {
    tasks.named("preBuild") {
        dependsOn(generateBindings, buildNativeLibraries)
    }
}
