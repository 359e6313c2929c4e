; Inno Setup script for clipdesk on Windows. UNTESTED here (built and tested on Linux only).
; Build: on Windows, with Python 3.11 and the same steps as packaging/build.sh (export the ONNX graphs with the
; development venv, freeze with PyInstaller from a venv without torch), then:
;   iscc /DAppVersion=0.1.0 packaging\windows\clipdesk.iss
; Layout follows the Linux bundle: the PyInstaller folder build\packaging\dist\clipdesk is the app;
; per-user install (no admin), Start menu entry, "Open with clipdesk" on folders and images.
; Uninstalling removes the program folder only: the library, thumbnails and models live in
; %LOCALAPPDATA%\clipdesk (platformdirs) and are kept, and photos are never touched.

#ifndef AppVersion
  #define AppVersion "0.1.0"
#endif

[Setup]
AppId={{6F0C5B7E-3C5B-4C7E-9F57-C11FDE5C0A11}
AppName=clipdesk
AppVersion={#AppVersion}
AppPublisher=clipdesk
DefaultDirName={localappdata}\Programs\clipdesk
DefaultGroupName=clipdesk
PrivilegesRequired=lowest
OutputDir=..\..\dist
OutputBaseFilename=clipdesk-{#AppVersion}-windows-x86_64-setup
Compression=lzma2/max
SolidCompression=yes
ArchitecturesInstallIn64BitMode=x64compatible
SetupIconFile=clipdesk.ico
UninstallDisplayIcon={app}\clipdesk-gui.exe
ChangesAssociations=yes

[Files]
Source: "..\..\build\packaging\dist\clipdesk\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs

[Icons]
Name: "{group}\clipdesk"; Filename: "{app}\clipdesk-gui.exe"
Name: "{userdesktop}\clipdesk"; Filename: "{app}\clipdesk-gui.exe"; Tasks: desktopicon

[Tasks]
Name: "desktopicon"; Description: "Create a desktop shortcut"; Flags: unchecked

[Registry]
; "Open with clipdesk" on folders (indexes the folder) and on image files.
Root: HKCU; Subkey: "Software\Classes\Directory\shell\clipdesk"; ValueType: string; ValueData: "Open with clipdesk"; Flags: uninsdeletekey
Root: HKCU; Subkey: "Software\Classes\Directory\shell\clipdesk\command"; ValueType: string; ValueData: """{app}\clipdesk-gui.exe"" ""%1"""
Root: HKCU; Subkey: "Software\Classes\Applications\clipdesk-gui.exe\shell\open\command"; ValueType: string; ValueData: """{app}\clipdesk-gui.exe"" ""%1"""; Flags: uninsdeletekey
Root: HKCU; Subkey: "Software\Classes\Applications\clipdesk-gui.exe\SupportedTypes"; ValueType: string; ValueName: ".jpg"; ValueData: ""
Root: HKCU; Subkey: "Software\Classes\Applications\clipdesk-gui.exe\SupportedTypes"; ValueType: string; ValueName: ".jpeg"; ValueData: ""
Root: HKCU; Subkey: "Software\Classes\Applications\clipdesk-gui.exe\SupportedTypes"; ValueType: string; ValueName: ".png"; ValueData: ""
Root: HKCU; Subkey: "Software\Classes\Applications\clipdesk-gui.exe\SupportedTypes"; ValueType: string; ValueName: ".heic"; ValueData: ""
Root: HKCU; Subkey: "Software\Classes\Applications\clipdesk-gui.exe\SupportedTypes"; ValueType: string; ValueName: ".webp"; ValueData: ""

[Run]
Filename: "{app}\clipdesk-gui.exe"; Description: "Start clipdesk"; Flags: nowait postinstall skipifsilent
