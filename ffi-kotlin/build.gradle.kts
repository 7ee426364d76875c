// Plugin versions for every module of this build. Android Gradle Plugin 8.7 needs Gradle 8.9 or later (the
// wrapper pins 8.10.2) and JDK 17.
plugins {
    id("com.android.library") version "8.7.3" apply false
    id("org.jetbrains.kotlin.android") version "2.1.0" apply false
}
