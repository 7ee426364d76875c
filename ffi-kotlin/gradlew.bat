@rem Runs this build with the Gradle version named in gradle\wrapper\gradle-wrapper.properties, which the wrapper
@rem downloads once (into %USERPROFILE%\.gradle\wrapper\dists) and checks against the SHA-256 pinned there.
@rem
@rem A shorter equivalent of the script `gradle wrapper` writes; running `gradle wrapper` replaces it with that one,
@rem which behaves the same. It needs the wrapper's own small jar, gradle\wrapper\gradle-wrapper.jar: see README.md
@rem ("Gradle wrapper") for how to get it, and how to check it.

@if "%DEBUG%"=="" @echo off
setlocal

set "APP_HOME=%~dp0"
if "%APP_HOME%"=="" set "APP_HOME=.\"

set "JAVA_EXE=java.exe"
if defined JAVA_HOME set "JAVA_EXE=%JAVA_HOME%\bin\java.exe"
if defined JAVA_HOME if not exist "%JAVA_EXE%" goto badJavaHome
if not defined JAVA_HOME (
    where java.exe >NUL 2>&1 || goto noJava
)

set "CLASSPATH=%APP_HOME%gradle\wrapper\gradle-wrapper.jar"
if not exist "%CLASSPATH%" goto missingJar

"%JAVA_EXE%" -Xmx64m -Xms64m %JAVA_OPTS% %GRADLE_OPTS% "-Dorg.gradle.appname=%~n0" -classpath "%CLASSPATH%" org.gradle.wrapper.GradleWrapperMain %*
set EXIT_CODE=%ERRORLEVEL%
endlocal & exit /b %EXIT_CODE%

:badJavaHome
echo gradlew: JAVA_HOME is set to a directory without bin\java.exe: %JAVA_HOME% 1>&2
endlocal & exit /b 1

:noJava
echo gradlew: no java.exe on PATH, and JAVA_HOME is not set; this build needs JDK 17. 1>&2
endlocal & exit /b 1

:missingJar
echo gradlew: gradle\wrapper\gradle-wrapper.jar is missing. Create it once with Gradle 8.9 or later, in %APP_HOME%: 1>&2
echo     gradle wrapper --gradle-version 8.10.2 --gradle-distribution-sha256-sum 31c55713e40233a8303827ceb42ca48a47267a0ad4bab9177123121e71524c26 1>&2
echo README.md, 'Gradle wrapper', says how to check the jar. 1>&2
endlocal & exit /b 1
